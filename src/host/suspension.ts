/**
 * Suspending sessions: the session's events and transcript made durable in the stores, its workspace
 * snapshotted to the blob store, its subprocess closed (the session's side is `Session.suspend`). The
 * host suspends for three reasons, each the `reason` of `session.status_suspended`:
 * - `idle_timeout`: hybrid sessions quiet for the idle timeout, found by a periodic scan;
 * - `capacity`: admission needs the slot (the least recently used quiet session);
 * - `host_draining`: every session, when the host drains.
 * A host without workspace snapshots, or whose store keeps no transcripts (`memory:`), cannot suspend.
 */
import type { Session } from '../session/session.js';
import type { WorkspaceSync } from '../workspace/workspace-sync.js';
import type { DataDirLayout } from './layout.js';

/** How long a transcript flush may take before a suspension gives up (the entries stay spooled). */
const FLUSH_TIMEOUT_MS = 10_000;

export interface SuspensionOptions {
  layout: DataDirLayout;
  /** Workspace snapshots; without them nothing is suspended. */
  workspaces: WorkspaceSync | undefined;
  /** The store keeps transcripts across subprocesses (anything but `memory:`). */
  canSuspend: boolean;
  /** Resolves once every transcript entry written so far is in the store (the mirror's drain). */
  flushTranscripts: ((signal: AbortSignal) => Promise<void>) | undefined;
  /** The host's live sessions. */
  sessions: () => Iterable<Session>;
  /** Hybrid sessions quiet for this long are suspended; 0 = never. */
  idleTimeoutMs: number;
  /** Whether the idle scan may suspend now (not while the host drains or closes). */
  isReady: () => boolean;
  onError: ((err: unknown) => void) | undefined;
  /** After a session is suspended (multi-host: its lease goes back). */
  onSuspended?: ((session: Session) => Promise<void>) | undefined;
}

export class Suspension {
  private readonly idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly options: SuspensionOptions) {
    const idle = options.idleTimeoutMs;
    if (idle > 0 && this.available) {
      // A quarter of the timeout, within 0.1-5 s: a session is suspended at most that late.
      this.idleTimer = setInterval(() => this.suspendIdle(idle), Math.min(5000, Math.max(100, idle / 4)));
      this.idleTimer.unref();
    }
  }

  /** Whether this host can suspend sessions at all. */
  get available(): boolean {
    return this.options.canSuspend && this.options.workspaces !== undefined;
  }

  /** Suspends a quiet session; resolves false when it was not quiet or a step failed (see `Session.suspend`). */
  suspend(session: Session, reason: string): Promise<boolean> {
    const workspaces = this.options.workspaces;
    if (!workspaces) return Promise.resolve(false);
    const record = session.snapshot;
    const suspended = session.suspend(reason, async () => {
      await session.events.flush();
      await this.options.flushTranscripts?.(AbortSignal.timeout(FLUSH_TIMEOUT_MS));
      await workspaces.save(record, this.options.layout.sessionPaths(record).cwd);
    });
    const after = this.options.onSuspended;
    if (!after) return suspended;
    return suspended.then(async (ok) => {
      if (ok) await after(session).catch((err: unknown) => this.options.onError?.(err));
      return ok;
    });
  }

  /** Stops the idle scan (idempotent); suspensions under way finish on their own. */
  close(): void {
    clearInterval(this.idleTimer);
  }

  private suspendIdle(idleMs: number): void {
    if (!this.options.isReady()) return;
    const cutoff = Date.now() - idleMs;
    for (const s of this.options.sessions()) {
      if (s.snapshot.pattern !== 'hybrid' || !s.isQuiet || s.lastActiveAt > cutoff) continue;
      this.suspend(s, 'idle_timeout').catch((err: unknown) => this.options.onError?.(err));
    }
  }
}
