/**
 * The values a flag or a `BERTH_*` variable can hold, parsed and checked: sizes, durations, ports, URLs,
 * counts, tenant API keys, and the secrets files that keep keys off the command line. Each failure is a
 * `BerthError('invalid_config')` that names the flag (and never echoes a secret file's content).
 */
import { readFileSync } from 'node:fs';
import { BerthError, describeError } from './errors.js';
import { ID_PATTERN } from './ids.js';

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  k: 1024,
  m: 1024 ** 2,
  g: 1024 ** 3,
};

/** `1MiB`, `512KiB`, `2GB`, `1048576` -> bytes. */
export function parseSize(value: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = SIZE_UNITS[match?.[2]?.toLowerCase() ?? 'x'];
  if (!match || unit === undefined) {
    throw new BerthError(
      'invalid_config',
      `${what}: ${JSON.stringify(value)} is not a size (e.g. 512KiB, 1MiB, 2GiB)`,
    );
  }
  return Math.floor(Number(match[1]) * unit);
}

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** `90s`, `5m`, `250ms`, `1h`, `0` -> milliseconds. */
export function parseDuration(value: string, what: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(value.trim());
  if (!match || (match[2] === undefined && Number(match[1]) !== 0)) {
    throw new BerthError(
      'invalid_config',
      `${what}: ${JSON.stringify(value)} is not a duration (e.g. 250ms, 90s, 5m, 1h)`,
    );
  }
  return Math.round(Number(match[1]) * (DURATION_UNITS[match[2] ?? 'ms'] ?? 1));
}

export function parsePort(value: string, what = '--port'): number {
  const port = Number(value);
  if (!/^\d+$/.test(value) || port > 65535) {
    throw new BerthError('invalid_config', `${what}: ${JSON.stringify(value)} is not a port (0-65535)`);
  }
  return port;
}

/** `tenant:key,tenant2:key2` -> key -> tenant. */
export function parseApiKeys(value: string): Map<string, string> {
  const keys = new Map<string, string>();
  for (const pair of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const colon = pair.indexOf(':');
    const tenant = pair.slice(0, colon);
    const key = pair.slice(colon + 1);
    if (colon <= 0 || !ID_PATTERN.test(tenant)) {
      throw new BerthError(
        'invalid_config',
        `--api-keys: ${JSON.stringify(pair.slice(0, 40))} is not tenant:key (tenant like ${ID_PATTERN.source})`,
      );
    }
    if (key.length < 8 || /\s/.test(key)) {
      throw new BerthError(
        'invalid_config',
        `--api-keys: the key of tenant ${tenant} must be at least 8 characters, no spaces`,
      );
    }
    if (keys.has(key)) throw new BerthError('invalid_config', `--api-keys: a key is given twice`);
    keys.set(key, tenant);
  }
  return keys;
}

export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}

export function parseUrl(value: string, what: string): string {
  try {
    const url = new URL(value);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http(s)');
    return url.toString().replace(/\/$/, '');
  } catch {
    throw new BerthError('invalid_config', `${what}: ${JSON.stringify(value)} is not an http(s) URL`);
  }
}

/** A secret file's text; an unreadable one is a config error that names the flag, never the content. */
export function readSecretFile(file: string, flag: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new BerthError('invalid_config', `${flag} ${file}: ${describeError(err)}`);
  }
}

/** The lines of a secrets file that hold something: no blank lines, no `#` comments. */
export function secretLines(text: string): string[] {
  return text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'));
}

export function modelKeyFrom(text: string): string {
  const [key, ...rest] = secretLines(text);
  if (key === undefined || rest.length > 0 || /\s/.test(key)) {
    throw new BerthError('invalid_config', '--model-api-key-file: the file must hold one key on one line');
  }
  return key;
}

export function parseCount(value: string, what: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\d+$/.test(value.trim()) || Number(value) > max) {
    throw new BerthError(
      'invalid_config',
      `${what}: ${JSON.stringify(value)} is not a whole number from 0 to ${max}`,
    );
  }
  return Number(value);
}

export function positive(ms: number, what: string): number {
  if (ms <= 0) throw new BerthError('invalid_config', `${what} must be more than 0`);
  return ms;
}
