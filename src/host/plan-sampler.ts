/**
 * `berth plan`'s sampler: the RSS of each measured session's whole subprocess tree, on an interval and on
 * demand (right after a turn), and the peak RSS of the measuring process itself.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { treeRssBytes } from '../sandbox/process-tree.js';
import type { Session } from '../session/session.js';

/**
 * Samples every session's subprocess tree on an interval until stopped. A tree that has not been spawned
 * yet, or has just ended, reads as 0 and is not counted as a sample.
 */
export class PlanSampler {
  readonly stats: Array<{ peakBytes: number; samples: number }>;
  hostPeakBytes = process.memoryUsage.rss();
  private readonly stopping = new AbortController();
  private readonly loop: Promise<void>;
  private stopped: Promise<void> | undefined;

  constructor(
    private readonly sessions: readonly Session[],
    private readonly intervalMs: number,
  ) {
    this.stats = sessions.map(() => ({ peakBytes: 0, samples: 0 }));
    this.loop = this.run();
  }

  /** Samples one session's tree now; returns the bytes (0 when it has no live tree). */
  async sampleNow(index: number): Promise<number> {
    const tree = this.sessions[index]?.processInfo?.tree;
    const stats = this.stats[index];
    if (!tree || !stats) return 0;
    const bytes = await treeRssBytes(tree);
    if (bytes > 0) {
      stats.samples++;
      stats.peakBytes = Math.max(stats.peakBytes, bytes);
    }
    this.hostPeakBytes = Math.max(this.hostPeakBytes, process.memoryUsage.rss());
    return bytes;
  }

  /** Idempotent; resolves when no sample is in flight. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.stopping.abort();
      await this.loop;
    })();
    return this.stopped;
  }

  private async run(): Promise<void> {
    const signal = this.stopping.signal;
    while (!signal.aborted) {
      const started = performance.now();
      await Promise.all(
        this.sessions.map((_, i) =>
          // /proc can change under a scan (a tool's process exits); the next sample reads it again.
          this.sampleNow(i).catch(() => 0),
        ),
      );
      const wait = Math.max(0, this.intervalMs - (performance.now() - started));
      await sleep(wait, undefined, { signal }).catch(() => undefined);
    }
  }
}
