/**
 * How many agents a host can hold: the sizing formula of Anthropic's hosting guide,
 * `agents per host = (host RAM - overhead) / per-session RAM ceiling`, rounded down. A "slot" is one
 * live subprocess tree (a session's, or a warm spare's); suspended and cold sessions hold none.
 */
import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';

export interface HostSizing {
  /** The RAM the host (container) may use, in bytes. */
  hostRamBytes: number;
  /** What the host needs for itself (Node, the API, the stores' caches), in bytes. */
  overheadBytes: number;
  /** The most one session's subprocess tree is expected to use, in bytes. */
  sessionCeilingBytes: number;
}

export const GIB = 1024 ** 3;

/** The ceiling Anthropic's hosting guide starts from: 1 GiB per agent. */
export const DEFAULT_SESSION_CEILING = GIB;

/** The formula's answer; 0 when the overhead leaves no room for even one session. */
export function agentsPerHost(sizing: HostSizing): number {
  if (sizing.sessionCeilingBytes <= 0) throw new RangeError('the per-session ceiling must be positive');
  return Math.max(0, Math.floor((sizing.hostRamBytes - sizing.overheadBytes) / sizing.sessionCeilingBytes));
}

/**
 * The RAM this process may use when none was configured: the cgroup (container) memory limit when it is
 * below the machine's memory, else the machine's memory.
 */
export function detectHostRam(): number {
  const total = totalmem();
  const limit =
    readLimitFile('/sys/fs/cgroup/memory.max') ??
    readLimitFile('/sys/fs/cgroup/memory/memory.limit_in_bytes');
  return limit !== undefined && limit < total ? limit : total;
}

function readLimitFile(file: string): number | undefined {
  try {
    const text = readFileSync(file, 'utf8').trim();
    const value = Number(text);
    // cgroup v2 says "max" for no limit; v1 says a huge number, which the caller's `< total` discards.
    return text !== 'max' && Number.isFinite(value) && value > 0 ? value : undefined;
  } catch {
    return undefined;
  }
}
