/**
 * Recycling: replacing a session's subprocess before its memory growth gets it killed. The policy
 * (recycle-policy.ts) decides; this module feeds it and acts:
 * - every `sampleIntervalMs` it reads the RSS of each live subprocess tree, one tree at a time to keep the
 *   pass cheap (`berth_subprocess_rss_bytes` reads the samples), and kills a tree over the hard limit
 *   mid-turn;
 * - at each turn boundary it asks the soft limits (turns, RSS, age) and recycles the subprocess when one
 *   is crossed: the next turn resumes the transcript in a fresh subprocess.
 * A sample belongs to the subprocess it was taken of (by leader pid): a replaced subprocess starts with none.
 */
import { treeRssBytes } from '../sandbox/process-tree.js';
import type { Session } from '../session/session.js';
import type { RecyclePolicy } from './recycle-policy.js';

export interface RecyclerOptions {
  policy: RecyclePolicy;
  /** How often the trees' RSS is sampled. */
  sampleIntervalMs: number;
  /** The host's live sessions. */
  sessions: () => Iterable<Session>;
  /** Whether the host is stopping: no recycling then (its subprocesses are being stopped anyway). */
  isStopping: () => boolean;
  onError: ((err: unknown) => void) | undefined;
}

/** The last RSS sample of a session's subprocess tree, tied to that subprocess by its leader pid. */
interface RssSample {
  leaderPid: number;
  bytes: number;
}

export class Recycler {
  private readonly rss = new WeakMap<Session, RssSample>();
  private readonly timer: NodeJS.Timeout;
  private sampling: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly options: RecyclerOptions) {
    // Sampled whether or not a limit needs it: the metric does.
    this.timer = setInterval(() => {
      this.sampling ??= this.sampleAll().finally(() => (this.sampling = undefined));
    }, options.sampleIntervalMs);
    this.timer.unref();
  }

  /** The last RSS sample of the session's current subprocess tree, in bytes. */
  lastRssBytes(session: Session): number | undefined {
    const sample = this.rss.get(session);
    const leaderPid = session.processInfo?.tree?.leaderPid;
    return sample && sample.leaderPid === leaderPid ? sample.bytes : undefined;
  }

  /** At a turn boundary: recycles the subprocess when a soft limit is crossed. */
  onTurnEnd(session: Session): void {
    const info = session.processInfo;
    if (!info || this.closed || this.options.isStopping()) return;
    const reason = this.options.policy.atTurnBoundary({
      turnsSinceSpawn: info.turnsSinceSpawn,
      rssBytes: this.lastRssBytes(session),
      ageMs: Date.now() - info.spawnedAt,
    });
    if (reason) session.recycle(reason).catch((err: unknown) => this.options.onError?.(err));
  }

  /** Stops sampling; resolves once no pass is in flight (idempotent). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.sampling;
  }

  private async sampleAll(): Promise<void> {
    for (const session of [...this.options.sessions()]) {
      if (this.closed || this.options.isStopping()) return;
      const tree = session.processInfo?.tree;
      if (!tree) continue;
      try {
        const bytes = await treeRssBytes(tree);
        // The subprocess may have been replaced while /proc was read: the sample is then of nothing live.
        if (session.processInfo?.tree?.leaderPid !== tree.leaderPid) continue;
        this.rss.set(session, { leaderPid: tree.leaderPid, bytes });
        const state = session.currentState;
        const over = this.options.policy.overHardLimit(bytes);
        if (over && (state === 'running' || state === 'requires_action')) {
          // Not awaited: the kill's grace period must not hold up the other sessions' samples.
          session
            .killProcess(
              'hard_rss_exceeded',
              `The agent's subprocess was killed mid-turn: ${over}. The next message resumes the conversation in a new subprocess.`,
            )
            .catch((err: unknown) => this.options.onError?.(err));
        }
      } catch (err) {
        this.options.onError?.(err);
      }
    }
  }
}
