/**
 * Berth's log: pino, one JSON object per line when stderr is not a terminal (what a log shipper reads),
 * readable lines on a terminal (pino-pretty, written synchronously in this thread). A line about a session,
 * task or group comes from a child logger that carries `tenant` and `session_id`, `task_id` or `group_id`.
 *
 * Secrets are kept out by configuration, not by care at each call:
 * - fields that hold a credential (`api_key`, `authorization`, `password`, `token`, `secret` and the like,
 *   at the top level and one level down) are replaced by `[redacted]`;
 * - fields that hold a URL (`url`, `store`, `blob_store`, `endpoint`, ...) keep the URL without its
 *   password or secret parameters (`redactUrl`);
 * - a message, and an error's message and stack, have every URL in them redacted the same way, and any
 *   `sk-...` key replaced, since an error from a driver may quote its connection string.
 */
import { Writable } from 'node:stream';
import { pino, stdSerializers, type DestinationStream, type Logger, type LoggerOptions } from 'pino';
import { BerthError } from '../errors.js';
import { redactUrl } from '../redact.js';

export type { Logger } from 'pino';

export const LOG_FORMATS = ['json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const SECRET_KEYS = [
  'api_key',
  'apiKey',
  'authorization',
  'password',
  'token',
  'secret',
  'model_api_key',
  'modelApiKey',
  'x-api-key',
];
const URL_KEYS = ['url', 'store', 'blob_store', 'blobStore', 'endpoint', 'model_endpoint', 'upstream'];
const URL_KEY_SET = new Set(URL_KEYS);

// A key that is not an identifier (`x-api-key`) needs pino's bracket syntax, or its path matches nothing.
const topLevel = (k: string): string => (/^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`);
const oneDown = (k: string): string => (/^[A-Za-z_$][\w$]*$/.test(k) ? `*.${k}` : `*["${k}"]`);

/** The paths pino redacts: each secret or URL field at the top level, one level down, and in headers. */
export const REDACT_PATHS: readonly string[] = [
  ...SECRET_KEYS.map(topLevel),
  ...SECRET_KEYS.map(oneDown),
  ...URL_KEYS.map(topLevel),
  ...URL_KEYS.map(oneDown),
];

// A URL anywhere in a text (`postgres://u:p@h/db`, `https://x?token=...`), and an Anthropic-style key.
const URL_IN_TEXT = /[a-z][a-z0-9+.-]*:\/\/[^\s'"<>]+/gi;
const API_KEY_IN_TEXT = /\bsk-[a-z0-9_-]{8,}/gi;

/** `text` with every URL's secrets and every `sk-` key replaced. */
export function redactText(text: string): string {
  return text.replace(URL_IN_TEXT, (url) => redactUrl(url)).replace(API_KEY_IN_TEXT, 'sk-***');
}

function censor(value: unknown, path: string[]): unknown {
  const key = path[path.length - 1] ?? '';
  if (URL_KEY_SET.has(key) && typeof value === 'string') return redactUrl(value);
  return '[redacted]';
}

/** An error as a log field: pino's serializer (type, message, stack, cause chain), redacted. */
function serializeError(err: unknown): unknown {
  if (!(err instanceof Error)) return typeof err === 'string' ? redactText(err) : err;
  const out = stdSerializers.errWithCause(err) as unknown as Record<string, unknown>;
  const scrub = (o: Record<string, unknown>, depth: number): void => {
    for (const field of ['message', 'stack'] as const) {
      if (typeof o[field] === 'string') o[field] = redactText(o[field]);
    }
    const cause = o.cause;
    if (depth < 8 && cause && typeof cause === 'object') scrub(cause as Record<string, unknown>, depth + 1);
  };
  scrub(out, 0);
  return out;
}

export interface CreateLoggerOptions {
  /** @default 'pretty' on a terminal, else 'json' */
  format?: LogFormat;
  /** @default 'info' */
  level?: LogLevel;
  /** Where lines go. @default stderr */
  destination?: NodeJS.WritableStream;
}

/** The pino options every Berth logger shares (levels as names, redaction, error serializers). */
export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    base: { pid: process.pid },
    messageKey: 'msg',
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: [...REDACT_PATHS], censor },
    serializers: { err: serializeError, error: serializeError },
    hooks: {
      logMethod(args, method) {
        // Without a message pino takes the error's (`log.error(err)`, `log.error({ err })`) after this
        // hook: give it that message here, so that it is redacted like any other.
        const [first, second] = args as unknown[];
        if (typeof first === 'object' && first !== null && typeof second !== 'string' && !('msg' in first)) {
          const err = first instanceof Error ? first : (first as { err?: unknown }).err;
          if (err instanceof Error) args = [first, err.message, ...args.slice(1)] as typeof args;
        }
        // A message may quote a URL or a key (an error's text); the fields are redacted by path above.
        const redacted = args.map((a) => (typeof a === 'string' ? redactText(a) : a)) as typeof args;
        method.apply(this, redacted);
      },
    },
  };
}

/** A logger as `berth serve` makes one from its flags. */
export async function createLogger(options: CreateLoggerOptions = {}): Promise<Logger> {
  const destination = options.destination ?? process.stderr;
  const isTty = (destination as { isTTY?: boolean }).isTTY === true;
  const format = options.format ?? (isTty ? 'pretty' : 'json');
  const base = loggerOptions(options.level ?? 'info');
  if (format === 'json') return pino(base, destination as DestinationStream);
  // Loaded only for a terminal: a JSON log never pays for the pretty printer.
  const { default: pretty } = await import('pino-pretty');
  const stream = pretty({
    destination: destination as Writable,
    colorize: isTty,
    sync: true,
    translateTime: 'SYS:HH:MM:ss.l',
    ignore: 'pid,hostname',
  });
  return pino(base, stream);
}

/** A logger that writes nothing (tests, embedding without a log). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/** A logger whose JSON lines are collected in memory, parsed (tests of what is logged). */
export function memoryLogger(level: LogLevel = 'debug'): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const text of chunk.toString('utf8').split('\n')) {
        if (text.trim() !== '') lines.push(JSON.parse(text) as Record<string, unknown>);
      }
      done();
    },
  });
  return { log: pino(loggerOptions(level), sink), lines };
}

/**
 * Failures no client sees, as log lines: Berth's own (not an `api_error`) at warn with their code and
 * message, since they say what is wrong; anything else at error with its stack and causes, under `what`.
 */
export function errorLogger(log: Logger, what = 'background failure'): (err: unknown) => void {
  return (err) => {
    if (err instanceof BerthError && err.type !== 'api_error') log.warn({ code: err.code }, err.message);
    else log.error({ err }, what);
  };
}
