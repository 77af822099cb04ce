/**
 * Options are parsed once, here, at the edge: flags first, then `BERTH_*` environment variables, then
 * defaults, into a complete config with sizes in bytes and durations in milliseconds. The core never
 * reads `process.env`.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { CLUSTER_OPTIONS, parseClusterConfig, type ClusterConfig } from './config-cluster.js';
import { OBSERVE_OPTIONS, parseObserveConfig, type ObserveConfig } from './config-observe.js';
import { BerthError } from './errors.js';
import type { RecycleLimits } from './host/recycle-policy.js';
import { DEFAULT_SESSION_CEILING, agentsPerHost, detectHostRam, type HostSizing } from './host/sizing.js';
import { TenantLimitsTable } from './host/tenant-limits.js';
import { DEFAULT_AGENT_UIDS, parseUidRange, type UidRange } from './sandbox/agent-uids.js';
import {
  isLoopback,
  modelKeyFrom,
  parseApiKeys,
  parseCount,
  parseDuration,
  parsePort,
  parseSize,
  parseUrl,
  positive,
  readSecretFile,
  secretLines,
} from './config-values.js';
import { DEFAULT_STORE_TIMEOUT_MS } from './stores/deadline.js';
import { PATTERNS, type Pattern } from './stores/types.js';

export interface ServeConfig {
  port: number;
  host: string;
  dataDir: string;
  /** Store URL, e.g. `sqlite:/var/lib/berth/berth.db`. */
  store: string;
  /**
   * The deadline of every call to the store and the blob store (a blob transfer's longest stall): a
   * store that hangs fails like one that refuses, so the durable mirror reports it (`mirror_delayed`).
   */
  storeTimeoutMs: number;
  /** The Messages API the agents use; null means the built-in scripted model. */
  modelEndpoint: string | null;
  /** The key the agents send to `modelEndpoint` (a placeholder for the scripted model). */
  modelApiKey: string;
  /** A scenario file for the built-in scripted model. */
  mockScript: string | null;
  pattern: Pattern;
  /** API key -> tenant; empty means no auth (loopback only). */
  apiKeys: Map<string, string>;
  /** What the operator should know about the config (a key given on the command line). */
  warnings: string[];
  /** Per-tenant limits on this host (`--tenant-limits`). */
  tenantLimits: TenantLimitsTable;
  /** How agents are confined: `bwrap` (see src/sandbox/sandbox.ts) or `none`. */
  sandbox: 'bwrap' | 'none';
  /** `--agent-uids`: the uids tenants' agents run as; undefined = the default range (as root). */
  agentUids: UidRange | undefined;
  /** Processes (and threads) one agent's tree may have under `--sandbox bwrap`. */
  agentPids: number;
  /** Lets `agent.network.allowed_domains` resolve to loopback and private addresses. */
  egressAllowPrivate: boolean;
  maxBodyBytes: number;
  heartbeatMs: number;
  confirmationTimeoutMs: number;
  interruptTimeoutMs: number;
  killGraceMs: number;
  /** When subprocesses are recycled (soft limits) or killed (hard RSS limit); 0 turns off a limit. */
  recycle: RecycleLimits;
  rssSampleIntervalMs: number;
  /** The sizing formula's inputs; the host admits `(hostRam - overhead) / sessionCeiling` subprocess trees. */
  sizing: HostSizing;
  /** Warm spares kept ready with `prewarm()`. */
  warmPool: number;
  /** Hybrid sessions quiet for this long are suspended; 0 = never. */
  idleTimeoutMs: number;
  /** Where workspace snapshots go: null = `DATA_DIR/blobs`, a path, or `s3://BUCKET/PREFIX?...`. */
  blobStore: string | null;
  /** The largest workspace a snapshot may hold (uncompressed). */
  snapshotLimitBytes: number;
  /** On SIGTERM, how long running turns may take to finish before their subprocesses are stopped. */
  drainTimeoutMs: number;
  /** `PATH` given to the agents' tools. */
  agentPath: string;
  /** Logs, metrics and traces (config-observe.ts). */
  observe: ObserveConfig;
  /** Multi-host mode (`--advertise-url`), or null for a host on its own. */
  cluster: ClusterConfig | null;
}

export { parseApiKeys, parseDuration, parseSize } from './config-values.js';

/** One option: its flag, its environment variable and its help line. */
export interface OptionSpec {
  flag: string;
  env: string;
  type: 'string' | 'boolean';
  help: string;
}

export const SERVE_OPTIONS: readonly OptionSpec[] = [
  {
    flag: 'port',
    env: 'BERTH_PORT',
    type: 'string',
    help: 'port to listen on (default 8080; 0 picks a free one)',
  },
  { flag: 'host', env: 'BERTH_HOST', type: 'string', help: 'address to bind (default 127.0.0.1)' },
  {
    flag: 'data-dir',
    env: 'BERTH_DATA_DIR',
    type: 'string',
    help: 'workspaces, config dirs and the embedded store (default ./.berth)',
  },
  {
    flag: 'store',
    env: 'BERTH_STORE',
    type: 'string',
    help: 'transcript/registry store URL (default sqlite:DATA_DIR/berth.db)',
  },
  {
    flag: 'store-timeout',
    env: 'BERTH_STORE_TIMEOUT',
    type: 'string',
    help: 'a store or blob store call not answered by then fails, as if the store were down (default 10s)',
  },
  {
    flag: 'model-endpoint',
    env: 'BERTH_MODEL_ENDPOINT',
    type: 'string',
    help: 'Messages API URL the agents use (ANTHROPIC_BASE_URL)',
  },
  {
    flag: 'mock-model',
    env: 'BERTH_MOCK_MODEL',
    type: 'boolean',
    help: 'start the built-in scripted model and use it (default without ANTHROPIC_API_KEY)',
  },
  {
    flag: 'mock-script',
    env: 'BERTH_MOCK_SCRIPT',
    type: 'string',
    help: 'scenario file (JSON) for the built-in scripted model, instead of its built-in scenarios (docs/scripted-model.md)',
  },
  {
    flag: 'pattern',
    env: 'BERTH_PATTERN',
    type: 'string',
    help: `default hosting pattern: ${PATTERNS.join(', ')} (default long-running)`,
  },
  {
    flag: 'api-keys',
    env: 'BERTH_API_KEYS',
    type: 'string',
    help: 'tenant:key,... (without keys only loopback binds are allowed)',
  },
  {
    flag: 'sandbox',
    env: 'BERTH_SANDBOX',
    type: 'string',
    help: 'bwrap (the default: each agent in a bubblewrap sandbox; docs/operations.md, Security model) or none (agents unconfined)',
  },
  {
    flag: 'agent-uids',
    env: 'BERTH_AGENT_UIDS',
    type: 'string',
    help: `START-END: the uids tenants' sandboxed agents run as, one per tenant (default ${DEFAULT_AGENT_UIDS.start}-${DEFAULT_AGENT_UIDS.end}; needs root)`,
  },
  {
    flag: 'agent-pids',
    env: 'BERTH_AGENT_PIDS',
    type: 'string',
    help: "processes and threads one sandboxed agent's tree may have (default 512)",
  },
  {
    flag: 'egress-allow-private',
    env: 'BERTH_EGRESS_ALLOW_PRIVATE',
    type: 'boolean',
    help: "let agents' allowed domains resolve to loopback and private addresses (refused by default)",
  },
  {
    flag: 'tenant-limits',
    env: 'BERTH_TENANT_LIMITS',
    type: 'string',
    help: 'per-tenant limits, e.g. alpha:sessions=100,live=4,streams=20,usd=50;*:live=8 (stored sessions, live subprocess trees and open streams on this host, a model budget in USD)',
  },
  {
    flag: 'api-keys-file',
    env: 'BERTH_API_KEYS_FILE',
    type: 'string',
    help: 'a file of tenant:key lines (# comments), instead of --api-keys on the command line',
  },
  {
    flag: 'model-api-key-file',
    env: 'BERTH_MODEL_API_KEY_FILE',
    type: 'string',
    help: 'a file holding the model API key (instead of ANTHROPIC_API_KEY); it never reaches an agent',
  },
  { flag: 'max-body', env: 'BERTH_MAX_BODY', type: 'string', help: 'largest request body (default 1MiB)' },
  { flag: 'heartbeat', env: 'BERTH_HEARTBEAT', type: 'string', help: 'SSE heartbeat interval (default 15s)' },
  {
    flag: 'confirmation-timeout',
    env: 'BERTH_CONFIRMATION_TIMEOUT',
    type: 'string',
    help: 'unanswered tool confirmations are denied after this (default 5m)',
  },
  {
    flag: 'interrupt-timeout',
    env: 'BERTH_INTERRUPT_TIMEOUT',
    type: 'string',
    help: 'an interrupt that has not ended the turn by then kills the subprocess (default 10s)',
  },
  {
    flag: 'kill-grace',
    env: 'BERTH_KILL_GRACE',
    type: 'string',
    help: 'SIGTERM-to-SIGKILL grace for subprocess trees (default 3s)',
  },
  {
    flag: 'recycle-after-turns',
    env: 'BERTH_RECYCLE_AFTER_TURNS',
    type: 'string',
    help: 'recycle a subprocess after this many turns (default 0 = never)',
  },
  {
    flag: 'recycle-rss',
    env: 'BERTH_RECYCLE_RSS',
    type: 'string',
    help: 'recycle a subprocess tree over this RSS at the next turn boundary (default 0 = off)',
  },
  {
    flag: 'recycle-age',
    env: 'BERTH_RECYCLE_AGE',
    type: 'string',
    help: 'recycle a subprocess this long after its spawn, at a turn boundary (default 0 = off)',
  },
  {
    flag: 'hard-rss',
    env: 'BERTH_HARD_RSS',
    type: 'string',
    help: 'kill a subprocess tree over this RSS at once, ending its turn (default 0 = off)',
  },
  {
    flag: 'rss-sample-interval',
    env: 'BERTH_RSS_SAMPLE_INTERVAL',
    type: 'string',
    help: 'how often subprocess tree RSS is sampled for the limits (default 5s)',
  },
  {
    flag: 'host-ram',
    env: 'BERTH_HOST_RAM',
    type: 'string',
    help: 'RAM of this host for the sizing formula (default: the cgroup limit, else the machine)',
  },
  {
    flag: 'host-overhead',
    env: 'BERTH_HOST_OVERHEAD',
    type: 'string',
    help: 'RAM kept for Berth itself, not for agents (default 1GiB)',
  },
  {
    flag: 'session-ram-ceiling',
    env: 'BERTH_SESSION_RAM_CEILING',
    type: 'string',
    help: 'RAM budget of one session subprocess tree (default 1GiB; measure with berth plan)',
  },
  {
    flag: 'warm-pool',
    env: 'BERTH_WARM_POOL',
    type: 'string',
    help: 'spare subprocesses kept prewarmed for new sessions (default 1; 0 = none)',
  },
  {
    flag: 'idle-timeout',
    env: 'BERTH_IDLE_TIMEOUT',
    type: 'string',
    help: 'suspend hybrid sessions idle this long (default 5m; 0 = never)',
  },
  {
    flag: 'blob-store',
    env: 'BERTH_BLOB_STORE',
    type: 'string',
    help: 'workspace snapshots: a directory or s3://BUCKET/PREFIX?endpoint=... (default DATA_DIR/blobs)',
  },
  {
    flag: 'snapshot-limit',
    env: 'BERTH_SNAPSHOT_LIMIT',
    type: 'string',
    help: 'largest workspace a snapshot may hold (default 1GiB)',
  },
  {
    flag: 'drain-timeout',
    env: 'BERTH_DRAIN_TIMEOUT',
    type: 'string',
    help: 'on SIGTERM, grace for running turns before every session is suspended (default 30s)',
  },
  ...OBSERVE_OPTIONS,
  ...CLUSTER_OPTIONS,
];

/** Raw values by flag name, from argv then env. */
function collect(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  specs: readonly OptionSpec[],
): Map<string, string | boolean> {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: Object.fromEntries(specs.map((s) => [s.flag, { type: s.type }])),
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    throw new BerthError('invalid_config', (err as Error).message);
  }
  const values = new Map<string, string | boolean>();
  for (const spec of specs) {
    const fromFlag = (parsed.values as Record<string, string | boolean | undefined>)[spec.flag];
    const fromEnv = env[spec.env];
    if (fromFlag !== undefined) values.set(spec.flag, fromFlag);
    else if (fromEnv !== undefined && fromEnv !== '') {
      if (spec.type === 'boolean') {
        if (!/^(1|0|true|false)$/i.test(fromEnv)) {
          throw new BerthError(
            'invalid_config',
            `${spec.env}: ${JSON.stringify(fromEnv)} is not 1, 0, true or false`,
          );
        }
        values.set(spec.flag, /^(1|true)$/i.test(fromEnv));
      } else {
        values.set(spec.flag, fromEnv);
      }
    }
  }
  return values;
}

function parseSandbox(value: string | undefined, warnings: string[]): 'bwrap' | 'none' {
  const sandbox = value ?? 'bwrap';
  if (sandbox !== 'bwrap' && sandbox !== 'none') {
    throw new BerthError('invalid_config', `--sandbox: ${JSON.stringify(sandbox)} is not bwrap or none`);
  }
  if (sandbox === 'none') {
    warnings.push('--sandbox none: agents are not confined; they can read what the server can read');
  }
  return sandbox;
}

/** The complete, validated config of `berth serve`; throws `BerthError('invalid_config')`. */
export function parseServeConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
): ServeConfig {
  const v = collect(argv, env, SERVE_OPTIONS);
  const str = (flag: string): string | undefined => {
    const value = v.get(flag);
    return typeof value === 'string' ? value : undefined;
  };
  const host = str('host') ?? '127.0.0.1';
  const dataDir = path.resolve(str('data-dir') ?? '.berth');
  const warnings: string[] = [];
  const keysFile = str('api-keys-file');
  if (keysFile !== undefined && str('api-keys') !== undefined) {
    throw new BerthError('invalid_config', '--api-keys and --api-keys-file exclude each other');
  }
  const apiKeys = parseApiKeys(
    keysFile !== undefined
      ? secretLines(readSecretFile(keysFile, '--api-keys-file')).join(',')
      : (str('api-keys') ?? ''),
  );
  if (argv.some((arg) => arg === '--api-keys' || arg.startsWith('--api-keys='))) {
    warnings.push(
      '--api-keys on the command line: every user of this machine can read it (ps, /proc); use --api-keys-file or BERTH_API_KEYS',
    );
  }
  if (apiKeys.size === 0 && !isLoopback(host)) {
    throw new BerthError(
      'invalid_config',
      `--host ${host}: without --api-keys Berth only listens on loopback, since every caller would be tenant "default"`,
    );
  }
  const pattern = str('pattern') ?? 'long-running';
  if (!(PATTERNS as readonly string[]).includes(pattern)) {
    throw new BerthError(
      'invalid_config',
      `--pattern: ${JSON.stringify(pattern)} is not one of ${PATTERNS.join(', ')}`,
    );
  }
  const explicitEndpoint = str('model-endpoint');
  const keyFile = str('model-api-key-file');
  const anthropicKey =
    keyFile !== undefined
      ? modelKeyFrom(readSecretFile(keyFile, '--model-api-key-file'))
      : env.ANTHROPIC_API_KEY || undefined;
  const mock = v.get('mock-model') === true || (explicitEndpoint === undefined && anthropicKey === undefined);
  if (mock && explicitEndpoint !== undefined) {
    throw new BerthError('invalid_config', '--mock-model and --model-endpoint exclude each other');
  }
  const store = str('store') ?? `sqlite:${path.join(dataDir, 'berth.db')}`;
  const port = parsePort(str('port') ?? '8080');
  return {
    port,
    host,
    dataDir,
    store,
    storeTimeoutMs: positive(
      parseDuration(str('store-timeout') ?? `${DEFAULT_STORE_TIMEOUT_MS}ms`, '--store-timeout'),
      '--store-timeout',
    ),
    modelEndpoint: mock
      ? null
      : parseUrl(explicitEndpoint ?? 'https://api.anthropic.com', '--model-endpoint'),
    modelApiKey: mock ? 'sk-berth-scripted-model' : (anthropicKey ?? 'sk-berth-no-key'),
    mockScript: str('mock-script') ?? null,
    pattern: pattern as Pattern,
    apiKeys,
    warnings,
    tenantLimits: TenantLimitsTable.parse(str('tenant-limits') ?? ''),
    sandbox: parseSandbox(str('sandbox'), warnings),
    agentUids: str('agent-uids') === undefined ? undefined : parseUidRange(str('agent-uids') ?? ''),
    egressAllowPrivate: v.get('egress-allow-private') === true,
    agentPids: positive(parseCount(str('agent-pids') ?? '512', '--agent-pids', 1_000_000), '--agent-pids'),
    maxBodyBytes: parseSize(str('max-body') ?? '1MiB', '--max-body'),
    heartbeatMs: positive(parseDuration(str('heartbeat') ?? '15s', '--heartbeat'), '--heartbeat'),
    confirmationTimeoutMs: positive(
      parseDuration(str('confirmation-timeout') ?? '5m', '--confirmation-timeout'),
      '--confirmation-timeout',
    ),
    interruptTimeoutMs: positive(
      parseDuration(str('interrupt-timeout') ?? '10s', '--interrupt-timeout'),
      '--interrupt-timeout',
    ),
    killGraceMs: parseDuration(str('kill-grace') ?? '3s', '--kill-grace'),
    recycle: parseRecycleLimits(str),
    rssSampleIntervalMs: positive(
      parseDuration(str('rss-sample-interval') ?? '5s', '--rss-sample-interval'),
      '--rss-sample-interval',
    ),
    sizing: parseSizing(str),
    warmPool: parseCount(str('warm-pool') ?? '1', '--warm-pool', 64),
    idleTimeoutMs: parseDuration(str('idle-timeout') ?? '5m', '--idle-timeout'),
    blobStore: str('blob-store') ?? null,
    snapshotLimitBytes: positive(
      parseSize(str('snapshot-limit') ?? '1GiB', '--snapshot-limit'),
      '--snapshot-limit',
    ),
    drainTimeoutMs: parseDuration(str('drain-timeout') ?? '30s', '--drain-timeout'),
    agentPath: env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    observe: parseObserveConfig(str, (flag) => v.get(flag) === true, env, port),
    cluster: parseClusterConfig(str, store),
  };
}

function parseSizing(str: (flag: string) => string | undefined): HostSizing {
  const given = str('host-ram');
  const sizing: HostSizing = {
    hostRamBytes: given === undefined ? detectHostRam() : parseSize(given, '--host-ram'),
    overheadBytes: parseSize(str('host-overhead') ?? '1GiB', '--host-overhead'),
    sessionCeilingBytes: positive(
      parseSize(str('session-ram-ceiling') ?? String(DEFAULT_SESSION_CEILING), '--session-ram-ceiling'),
      '--session-ram-ceiling',
    ),
  };
  if (agentsPerHost(sizing) < 1) {
    throw new BerthError(
      'invalid_config',
      `the sizing formula leaves no room for a session: (--host-ram ${sizing.hostRamBytes} - --host-overhead ${sizing.overheadBytes}) / --session-ram-ceiling ${sizing.sessionCeilingBytes} < 1`,
    );
  }
  return sizing;
}

function parseRecycleLimits(str: (flag: string) => string | undefined): RecycleLimits {
  const limits: RecycleLimits = {
    afterTurns: parseCount(str('recycle-after-turns') ?? '0', '--recycle-after-turns'),
    softRssBytes: parseSize(str('recycle-rss') ?? '0', '--recycle-rss'),
    maxAgeMs: parseDuration(str('recycle-age') ?? '0', '--recycle-age'),
    hardRssBytes: parseSize(str('hard-rss') ?? '0', '--hard-rss'),
  };
  if (limits.hardRssBytes > 0 && limits.hardRssBytes <= limits.softRssBytes) {
    throw new BerthError(
      'invalid_config',
      '--hard-rss must be above --recycle-rss: a tree over the hard limit is killed mid-turn, so the soft limit would never act',
    );
  }
  return limits;
}
