/**
 * The plain data a session works with: its directories, its timeouts, what the host may know of its
 * subprocess, and the user events it accepts.
 */
import type { Options, SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { CreateSpawner } from '../sandbox/plain-spawn.js';
import type { ProcessTreeId } from '../sandbox/process-tree.js';
import type { SessionRecord, SessionRegistry } from '../stores/types.js';
import type { AgentRuntime } from './agent-runtime.js';
import type { ContentBlock } from './events.js';
import type { SessionEventStream } from './event-stream.js';
import type { SessionState } from './session-state.js';
import type { ClaimableSpare } from './spare-claim.js';

export interface SessionPaths {
  /** The agent's working directory; also what the SDK derives the transcript's projectKey from. */
  cwd: string;
  /** The tenant's `CLAUDE_CONFIG_DIR`. */
  configDir: string;
  /** The tenant's `HOME` for the subprocess. */
  home: string;
}

export interface SessionTimeouts {
  /** How long a tool confirmation may wait for the client before it is a deny. */
  confirmationMs: number;
  /** How long an interrupt may take to end the turn before the subprocess is killed. */
  interruptMs: number;
  /** SIGTERM-to-SIGKILL grace when a subprocess tree is killed. */
  killGraceMs: number;
}

/** What the host's policies need to know about a live subprocess. */
export interface ProcessInfo {
  /** Undefined until the SDK has spawned the process. */
  tree: ProcessTreeId | undefined;
  spawnedAt: number;
  turnsSinceSpawn: number;
}

/** A user event as accepted by {@link Session.send}. */
export type UserEvent =
  | { type: 'user.message'; content: string | ContentBlock[] }
  | { type: 'user.interrupt' }
  | {
      type: 'user.tool_confirmation';
      /** The id of the `agent.tool_use` event it answers. */
      tool_use_id: string;
      result: 'allow' | 'deny';
      deny_message?: string | undefined;
    };

/** What a session is made of. */
export interface SessionSetup {
  record: SessionRecord;
  events: SessionEventStream;
  registry: SessionRegistry;
  /** The transcript store, already scoped to this session's tenant. */
  transcriptStore: SessionStore;
  paths: SessionPaths;
  /** The complete subprocess environment (see `buildAgentEnv`). */
  env: Record<string, string>;
  timeouts: SessionTimeouts;
  /** The Agent SDK. @default sdkRuntime */
  runtime?: AgentRuntime | undefined;
  /** Makes the spawner of each subprocess; the plain one by default. */
  createSpawner?: CreateSpawner | undefined;
  /** Where failures that no client can see are reported. */
  onError?: ((err: unknown) => void) | undefined;
  /**
   * More SDK options for each subprocess (a group's MCP bus, its shared directory), made anew per spawn.
   * They cannot replace the isolation levers or the session's own cwd, env, store and spawner.
   */
  processOptions?: (() => Partial<Options>) | undefined;
  /** Called after every change of state (for metrics and tests). */
  onTransition?: ((from: SessionState, to: SessionState) => void) | undefined;
  /** Telemetry's view of the session's turns and starts (see host/session-telemetry.ts). */
  observer?: SessionObserver | undefined;
}

/** How a subprocess started: spawned (`cold`), a claimed warm spare (`warm`), or after a restore (`hydrate`). */
export type StartKind = 'cold' | 'warm' | 'hydrate';

/** What telemetry sees of a session from inside it (the rest it reads from the session's events). */
export interface SessionObserver {
  /** Runs one turn (a span around it: what the turn does is traced inside it). */
  readonly turn: (run: () => Promise<void>) => Promise<void>;
  /** A subprocess sent its first message, `ms` after its turn began. */
  readonly started: (kind: StartKind, ms: number) => void;
  /** A subprocess was ended by a failure of this type (`hard_rss_exceeded`, `memory_limit`, ...). */
  readonly ended: (errorType: string) => void;
}

/** The host's hooks into a session's life; `S` is the session (`Session`). */
export interface SessionHooks<S> {
  /**
   * Called when a turn has ended and the subprocess is alive and idle: the turn boundary at which the host
   * may `Session.recycle` it. Runs before the next queued turn starts.
   */
  onTurnEnd?: ((session: S) => void) | undefined;
  /**
   * Asked, synchronously, before user messages are accepted: `needsSlot` is true when the session holds
   * no subprocess and will need one. Throws to refuse the messages (nothing is stored then); may return
   * a promise that the turn awaits before it spawns (a subprocess being suspended to make room).
   */
  admit?: ((session: S, needsSlot: boolean) => Promise<void> | undefined) | undefined;
  /** Runs before a subprocess is started: the host restores the workspace here when it must. */
  prepareStart?: ((session: S) => Promise<void>) | undefined;
  /** A warm spare for the session's first subprocess, if the host has a fitting one. */
  claimSpare?: ((session: S) => ClaimableSpare | undefined) | undefined;
}
