/**
 * When a session's subprocess should be replaced before memory growth kills it. Pure: the host feeds it
 * what it measured and acts on the answer.
 *
 * Soft limits (turns, RSS, age since spawn) are checked at a turn boundary and lead to a graceful recycle:
 * the next turn resumes the transcript in a fresh subprocess. The hard RSS limit is checked on every sample
 * and, mid-turn, kills the tree at once.
 */

export interface RecycleLimits {
  /** Turns a subprocess may run before it is recycled; 0 = no limit. @default 0 */
  afterTurns: number;
  /** Soft RSS limit of the whole process tree, in bytes; 0 = none. @default 0 */
  softRssBytes: number;
  /** Age since spawn after which a subprocess is recycled, in ms; 0 = none. @default 0 */
  maxAgeMs: number;
  /** Hard RSS limit of the whole process tree, in bytes; 0 = none. @default 0 */
  hardRssBytes: number;
}

export interface ProcessUsage {
  /** Turns the current subprocess has finished. */
  turnsSinceSpawn: number;
  /** The last RSS sample of its tree, if one was taken since it was spawned. */
  rssBytes: number | undefined;
  /** Milliseconds since it was spawned. */
  ageMs: number;
}

export const NO_RECYCLING: RecycleLimits = { afterTurns: 0, softRssBytes: 0, maxAgeMs: 0, hardRssBytes: 0 };

export class RecyclePolicy {
  readonly limits: RecycleLimits;

  constructor(limits: Partial<RecycleLimits> = {}) {
    this.limits = { ...NO_RECYCLING, ...limits };
  }

  /** Why the subprocess should be recycled at this turn boundary, or null. */
  atTurnBoundary(usage: ProcessUsage): string | null {
    const { afterTurns, softRssBytes, maxAgeMs } = this.limits;
    if (afterTurns > 0 && usage.turnsSinceSpawn >= afterTurns) {
      return `${usage.turnsSinceSpawn} turns since spawn, the limit is ${afterTurns}`;
    }
    if (softRssBytes > 0 && usage.rssBytes !== undefined && usage.rssBytes > softRssBytes) {
      return `rss ${formatBytes(usage.rssBytes)} over the soft limit ${formatBytes(softRssBytes)}`;
    }
    if (maxAgeMs > 0 && usage.ageMs >= maxAgeMs) {
      return `age ${formatDuration(usage.ageMs)} over the limit ${formatDuration(maxAgeMs)}`;
    }
    return null;
  }

  /** Why the subprocess must be killed now, or null. */
  overHardLimit(rssBytes: number): string | null {
    const { hardRssBytes } = this.limits;
    if (hardRssBytes > 0 && rssBytes > hardRssBytes) {
      return `rss ${formatBytes(rssBytes)} over the hard limit ${formatBytes(hardRssBytes)}`;
    }
    return null;
  }
}

/** `641728512` -> `612 MiB`; below 10 MiB one decimal, from 1 GiB on in GiB. */
export function formatBytes(bytes: number): string {
  const mib = bytes / 1024 ** 2;
  if (mib >= 1024) return `${trim((mib / 1024).toFixed(2))} GiB`;
  return `${mib < 10 ? trim(mib.toFixed(1)) : Math.round(mib)} MiB`;
}

/** `95000` -> `1m35s`. */
export function formatDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  if (s < 60) return s > 0 ? `${s}s` : `${ms}ms`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return [h > 0 ? `${h}h` : '', m > 0 ? `${m}m` : '', rest > 0 ? `${rest}s` : ''].join('');
}

function trim(fixed: string): string {
  return fixed.replace(/\.?0+$/, '');
}
