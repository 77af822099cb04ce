/**
 * The flags of multi-host mode (`--advertise-url` turns it on): where other hosts and routers reach this
 * host, its id in the host registry, and how long a silent host is believed alive. Parsed here, beside
 * config.ts, which stays the one entry point (`parseServeConfig`).
 */
import { BerthError } from './errors.js';
import { ID_PATTERN } from './ids.js';
import { parseDuration, parseUrl, positive } from './config-values.js';
import { storeHasLeases } from './stores/open-stores.js';

export interface ClusterConfig {
  /** This host's id in the registry: what `x-berth-host` carries. */
  hostId: string;
  /** The URL other hosts and routers use to reach this host's API (no trailing slash). */
  advertiseUrl: string;
  /** How long a host, and a lease it holds, outlives its last heartbeat. */
  leaseTtlMs: number;
}

export const CLUSTER_OPTIONS = [
  {
    flag: 'advertise-url',
    env: 'BERTH_ADVERTISE_URL',
    type: 'string',
    help: "this host's URL for other hosts and routers; turns on multi-host mode (postgres:// or redis:// --store)",
  },
  {
    flag: 'host-id',
    env: 'BERTH_HOST_ID',
    type: 'string',
    help: "this host's id among hosts (default: the advertise URL's host and port)",
  },
  {
    flag: 'lease-ttl',
    env: 'BERTH_LEASE_TTL',
    type: 'string',
    help: 'multi-host: how long a silent host keeps its sessions (default 10s; heartbeats every third of it)',
  },
] as const;

/** Multi-host mode's config, or null without `--advertise-url`; throws `BerthError('invalid_config')`. */
export function parseClusterConfig(
  str: (flag: string) => string | undefined,
  store: string,
): ClusterConfig | null {
  const advertise = str('advertise-url');
  if (advertise === undefined) {
    for (const flag of ['host-id', 'lease-ttl']) {
      if (str(flag) !== undefined) {
        throw new BerthError('invalid_config', `--${flag} needs --advertise-url (multi-host mode)`);
      }
    }
    return null;
  }
  const advertiseUrl = parseUrl(advertise, '--advertise-url');
  if (!storeHasLeases(store)) {
    throw new BerthError(
      'invalid_config',
      `--advertise-url needs a store that many hosts share with atomic compare-and-set: PostgreSQL (postgres://) or Redis (redis://); --store ${store.replace(/:.*/s, ':')}... cannot hold leases`,
    );
  }
  const url = new URL(advertiseUrl);
  const hostId =
    str('host-id') ??
    `${url.hostname}-${url.port || (url.protocol === 'https:' ? '443' : '80')}`.replace(
      /[^A-Za-z0-9_-]/g,
      '-',
    );
  if (!ID_PATTERN.test(hostId)) {
    throw new BerthError(
      'invalid_config',
      `--host-id: ${JSON.stringify(hostId)} does not match ${ID_PATTERN.source}`,
    );
  }
  const leaseTtlMs = positive(parseDuration(str('lease-ttl') ?? '10s', '--lease-ttl'), '--lease-ttl');
  if (leaseTtlMs < 1000) {
    throw new BerthError(
      'invalid_config',
      '--lease-ttl must be at least 1s: hosts heartbeat every third of it',
    );
  }
  return { hostId, advertiseUrl, leaseTtlMs };
}
