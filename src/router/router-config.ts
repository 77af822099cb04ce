/**
 * `berth router` options, parsed once at the edge: flags first, then environment variables, then defaults,
 * into a complete {@link RouterConfig} (durations in ms, sizes in bytes). Each failure is a
 * `BerthError('invalid_config')` naming the flag.
 *
 * Environment variables: each flag has its own `BERTH_ROUTER_*` variable. The options a router shares with
 * the hosts behind it (the store, the tenant keys, the body limit) also fall back to the host's `BERTH_*`
 * variable, so that one secret or config map serves both; the router's own (port, bind address, refresh)
 * do not, since a router and a host started from one environment must not bind the same port.
 */
import { parseLogFlags } from '../config-observe.js';
import type { LogFormat, LogLevel } from '../observe/logger.js';
import { parseArgs } from 'node:util';
import {
  isLoopback,
  parseApiKeys,
  parseDuration,
  parsePort,
  parseSize,
  positive,
  readSecretFile,
  secretLines,
} from '../config-values.js';
import { BerthError, describeError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { DEFAULT_STORE_TIMEOUT_MS } from '../stores/deadline.js';
import { storeHasLeases } from '../stores/open-stores.js';

export interface RouterConfig {
  port: number;
  /** The address to bind; without API keys only loopback is allowed. */
  host: string;
  /** The store the hosts share: `postgres://`, `postgresql://`, `redis://` or `rediss://`. */
  store: string;
  /** The deadline of each store call (the host list, a lease). */
  storeTimeoutMs: number;
  /** API key -> tenant; empty means no auth (loopback only) and every caller is tenant `default`. */
  apiKeys: Map<string, string>;
  /** How often the host list is read again from the store. */
  refreshMs: number;
  /** The largest request body the router buffers (outside `/v1/tasks`, which has its own limit). */
  maxBodyBytes: number;
  /** What the operator should know about the config (a key given on the command line). */
  warnings: string[];
  /** `json` or `pretty`; null: pretty on a terminal, JSON otherwise. */
  logFormat: LogFormat | null;
  logLevel: LogLevel;
}

/** One option: its flag, its environment variables (first set wins) and its help line. */
interface RouterOptionSpec {
  flag: string;
  env: readonly string[];
  help: string;
}

export const ROUTER_OPTIONS: readonly RouterOptionSpec[] = [
  { flag: 'port', env: ['BERTH_ROUTER_PORT'], help: 'port to listen on (default 8080; 0 picks a free one)' },
  { flag: 'host', env: ['BERTH_ROUTER_HOST'], help: 'address to bind (default 127.0.0.1)' },
  {
    flag: 'store',
    env: ['BERTH_ROUTER_STORE', 'BERTH_STORE'],
    help: 'the store the hosts share, with their registry and leases: postgres://... or redis://... (required)',
  },
  {
    flag: 'store-timeout',
    env: ['BERTH_ROUTER_STORE_TIMEOUT', 'BERTH_STORE_TIMEOUT'],
    help: 'a store call not answered by then fails (default 10s)',
  },
  {
    flag: 'api-keys',
    env: ['BERTH_ROUTER_API_KEYS', 'BERTH_API_KEYS'],
    help: "tenant:key,... the hosts' keys (without keys only loopback binds are allowed)",
  },
  {
    flag: 'api-keys-file',
    env: ['BERTH_ROUTER_API_KEYS_FILE', 'BERTH_API_KEYS_FILE'],
    help: 'a file of tenant:key lines (# comments), instead of --api-keys on the command line',
  },
  {
    flag: 'refresh',
    env: ['BERTH_ROUTER_REFRESH'],
    help: 'how often the host list is read from the store: ms, or a duration like 2s (default 1000)',
  },
  {
    flag: 'max-body',
    env: ['BERTH_ROUTER_MAX_BODY', 'BERTH_MAX_BODY'],
    help: "largest request body, as the hosts' --max-body (default 1MiB; /v1/tasks allows 48MiB)",
  },
  {
    flag: 'log-format',
    env: ['BERTH_ROUTER_LOG_FORMAT', 'BERTH_LOG_FORMAT'],
    help: 'json (one object per line) or pretty (default: pretty on a terminal, else json)',
  },
  {
    flag: 'log-level',
    env: ['BERTH_ROUTER_LOG_LEVEL', 'BERTH_LOG_LEVEL'],
    help: 'fatal, error, warn, info, debug, trace or silent (default info)',
  },
];

const NEEDS_SHARED_STORE =
  'the router reads the host registry and session leases from the store the hosts share: PostgreSQL (postgres://USER@HOST:PORT/DB) or Redis (redis://HOST:PORT, rediss://...)';

/** Raw values by flag name: the flag, else the first environment variable set. */
function collect(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): Map<string, string> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(ROUTER_OPTIONS.map((o) => [o.flag, { type: 'string' as const }])),
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new BerthError('invalid_config', describeError(err));
  }
  const values = new Map<string, string>();
  const flags = parsed.values as Record<string, string | undefined>;
  for (const option of ROUTER_OPTIONS) {
    const value =
      flags[option.flag] ?? option.env.map((name) => env[name]).find((v) => v !== undefined && v !== '');
    if (value !== undefined) values.set(option.flag, value);
  }
  return values;
}

/** `--store`: required, and a store that has the host registry. Never echoes a password. */
export function parseRouterStore(value: string | undefined): string {
  if (value === undefined || value.trim() === '') {
    throw new BerthError('invalid_config', `--store is required: ${NEEDS_SHARED_STORE}`);
  }
  const colon = value.indexOf(':');
  const scheme = colon > 0 ? value.slice(0, colon).toLowerCase() : '';
  if (!storeHasLeases(value)) {
    throw new BerthError(
      'invalid_config',
      `--store ${redactUrl(value)}: ${scheme === '' ? 'not a store URL' : `${scheme}: has no host registry`}; ${NEEDS_SHARED_STORE}`,
    );
  }
  return value;
}

/** `--refresh`: a bare number is milliseconds (`1000`), else a duration (`2s`); more than 0. */
export function parseRefresh(value: string): number {
  const ms = /^\d+$/.test(value.trim()) ? Number(value) : parseDuration(value, '--refresh');
  return positive(ms, '--refresh');
}

/** The complete, validated config of `berth router`; throws `BerthError('invalid_config')`. */
export function parseRouterConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): RouterConfig {
  const v = collect(argv, env);
  const host = v.get('host') ?? '127.0.0.1';
  const warnings: string[] = [];
  const keysFile = v.get('api-keys-file');
  if (keysFile !== undefined && v.get('api-keys') !== undefined) {
    throw new BerthError('invalid_config', '--api-keys and --api-keys-file exclude each other');
  }
  const apiKeys = parseApiKeys(
    keysFile !== undefined
      ? secretLines(readSecretFile(keysFile, '--api-keys-file')).join(',')
      : (v.get('api-keys') ?? ''),
  );
  // The same rule as `berth serve`: a warning, since a key on the command line works but leaks.
  if (argv.some((arg) => arg === '--api-keys' || arg.startsWith('--api-keys='))) {
    warnings.push(
      '--api-keys on the command line: every user of this machine can read it (ps, /proc); use --api-keys-file or BERTH_ROUTER_API_KEYS',
    );
  }
  if (apiKeys.size === 0 && !isLoopback(host)) {
    throw new BerthError(
      'invalid_config',
      `--host ${host}: without --api-keys the router only listens on loopback, since every caller would be tenant "default"`,
    );
  }
  const { format: logFormat, level: logLevel } = parseLogFlags(v.get('log-format'), v.get('log-level'));
  const logFlags = { logFormat, logLevel };
  return {
    port: parsePort(v.get('port') ?? '8080'),
    host,
    store: parseRouterStore(v.get('store')),
    storeTimeoutMs: positive(
      parseDuration(v.get('store-timeout') ?? `${DEFAULT_STORE_TIMEOUT_MS}ms`, '--store-timeout'),
      '--store-timeout',
    ),
    apiKeys,
    refreshMs: parseRefresh(v.get('refresh') ?? '1000'),
    maxBodyBytes: positive(parseSize(v.get('max-body') ?? '1MiB', '--max-body'), '--max-body'),
    warnings,
    ...logFlags,
  };
}

/** `berth help router`. */
export function routerHelp(): string {
  const lines = ROUTER_OPTIONS.map(
    (o) => `  --${o.flag.padEnd(15)} ${o.env.join(' or ').padEnd(50)} ${o.help}`,
  );
  return [
    'Usage: berth router --store URL [options]',
    '',
    'A stateless router in front of many `berth serve` hosts that share one store: it sends each session',
    'to the host holding its lease, else to the host its (tenant, id) hashes to; other requests to the host',
    'with the most free slots. Run any number of replicas.',
    '',
    'Each option can also be set by its environment variable.',
    '',
    ...lines,
  ].join('\n');
}
