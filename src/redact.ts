/**
 * URLs as Berth prints them: in the startup lines, in log lines and in error messages. A store or model URL
 * may carry a secret in two places, the user info (`postgres://user:SECRET@host`) and a query parameter
 * (`?password=SECRET`, `?sslpassword=...`, `?token=...`); both become `***`, the rest is kept so that an
 * operator can still tell which server is meant.
 *
 * Works on text, not on a parsed URL: the URLs worth redacting are often the ones too broken to parse
 * (an unencoded `@` or `/` in a password), and a message must never quote the secret of a bad URL either.
 */

// Up to the last `@` before the host: an unencoded password may hold `@`, `/` or `?`; hiding too much of a
// broken URL is harmless, printing part of its password is not.
const USER_INFO = /^([a-z][a-z0-9+.-]*:\/\/)([^:@/?#]*):.*@/is;
// A URL inside a parameter (`?endpoint=http://user:secret@minio`); its password cannot hold `&` unencoded.
const NESTED_USER_INFO = /(\/\/[^:@/?#&=]*):[^@/?#&]*@/g;
// Any parameter whose name says it holds a secret (`password`, `sslpassword`, `token`, `secretAccessKey`).
const SECRET_PARAM = /([?&][a-z0-9_.-]*(?:pass|secret|token|key)[a-z0-9_.-]*=)[^&#]*/gi;

/**
 * `url` with its password and every secret-looking query parameter replaced by `***`. A user name alone
 * (`postgres://postgres@host`) is kept: it names the account, it does not open it.
 */
export function redactUrl(url: string): string {
  return url
    .replace(USER_INFO, '$1$2:***@')
    .replace(NESTED_USER_INFO, '$1:***@')
    .replace(SECRET_PARAM, '$1***');
}
