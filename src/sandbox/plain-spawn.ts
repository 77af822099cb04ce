/**
 * The plain spawner: runs the `claude` CLI as an ordinary child process, but as the leader of its own
 * session and process group, marked so that {@link killTree} can find everything it starts.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { SpawnedProcess, SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import type { ModelGrant } from './model-proxy.js';
import type { AgentCgroup } from './cgroups.js';
import type { SpawnOwner } from './spawn-owner.js';
import { TREE_MARKER_VAR, killTree, type ProcessTreeId } from './process-tree.js';

/** The last bytes of a subprocess's stderr kept for error messages. */
const STDERR_TAIL_BYTES = 8 * 1024;
/** How often a tree with a cgroup is checked for a kill by the kernel's OOM killer. */
const OOM_POLL_MS = 250;

export interface SpawnedTree {
  /** Set once the SDK has asked for the process. */
  readonly tree: ProcessTreeId | undefined;
  /** The tail of the CLI's stderr, for error reports. */
  stderrTail(): string;
  /** Kills the whole tree (idempotent); resolves when it is gone. */
  kill(graceMs: number): Promise<void>;
  /** Whose the process is from now on (a claimed spare's): its model use is metered for `owner`. */
  assignOwner?(owner: SpawnOwner): void;
  /** Why the tree ended, when a limit ended it (its memory: `memory_limit`). */
  endCause?(): { type: 'memory_limit'; message: string } | undefined;
  /** Pass as `options.spawnClaudeCodeProcess`. */
  spawn(options: SpawnOptions): SpawnedProcess;
}

/** What a spawner runs instead of the CLI (see `sandbox.ts`), and the tree's cgroup when it has one. */
export interface WrappedCommand {
  command: string;
  args: string[];
  cgroup?: AgentCgroup | undefined;
  /** Ends what was granted for this process alone (an egress token), once it has exited. */
  release?: (() => void) | undefined;
  /** Variables added to the process's environment (kept out of argv: other processes can read argv). */
  env?: Record<string, string> | undefined;
}

export type { SpawnOwner } from './spawn-owner.js';

/** Makes the spawner of one subprocess. */
export type CreateSpawner = (owner: SpawnOwner) => SpawnedTree;

export interface PlainSpawnerOptions {
  /** SIGTERM-to-SIGKILL grace of the kill that follows the SDK's abort (`--kill-grace`). */
  killGraceMs: number;
  /**
   * The model credential of each process (see `ModelProxy.grant`): its `ANTHROPIC_BASE_URL` and a token
   * of its own in `ANTHROPIC_API_KEY`, revoked when the process exits. Without it the environment the
   * SDK passes is used as it is.
   */
  grant?: (() => ModelGrant) | undefined;
  /** Runs the CLI inside something (a sandbox, see `sandbox.ts`): the command and argv that do. */
  wrap?: ((request: SpawnOptions) => WrappedCommand) | undefined;
}

/** One spawner per subprocess: it remembers the tree it started so the owner can kill all of it. */
export function createPlainSpawner(options: PlainSpawnerOptions): SpawnedTree {
  const { killGraceMs } = options;
  let tree: ProcessTreeId | undefined;
  let stderr = '';
  let killing: Promise<void> | undefined;
  let cgroup: AgentCgroup | undefined;
  let destroying: Promise<void> | undefined;
  let cause: { type: 'memory_limit'; message: string } | undefined;
  let grant: ModelGrant | undefined;
  // The cgroup goes when the tree does: whatever is still in it (nothing, in a PID namespace) is killed.
  const destroyCgroup = (): Promise<void> => (destroying ??= cgroup?.destroy() ?? Promise.resolve());
  const noteOom = (): boolean => {
    if (cause || !cgroup || cgroup.oomKills() === 0) return Boolean(cause);
    cause = {
      type: 'memory_limit',
      message:
        "The agent's processes went over the session's memory limit; the kernel killed one, and Berth the rest",
    };
    return true;
  };
  const kill = (graceMs: number): Promise<void> => {
    if (!tree) return Promise.resolve();
    killing ??= killTree(tree, { graceMs }).finally(destroyCgroup);
    return killing;
  };
  return {
    get tree() {
      return tree;
    },
    stderrTail: () => stderr,
    kill,
    assignOwner: (owner) => grant?.assign(owner),
    endCause: () => (noteOom(), cause),
    spawn(request) {
      const marker = randomUUID();
      grant = options.grant?.();
      const credential = grant && { ANTHROPIC_BASE_URL: grant.baseUrl, ANTHROPIC_API_KEY: grant.token };
      const wrapped = options.wrap?.(request);
      const { command, args } = wrapped ?? request;
      cgroup = wrapped?.cgroup;
      const child = spawn(command, args, {
        cwd: request.cwd,
        env: { ...request.env, ...credential, ...wrapped?.env, [TREE_MARKER_VAR]: marker },
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      if (child.pid !== undefined) tree = { leaderPid: child.pid, marker };
      // Up to three `exit` listeners here, and the SDK's transport adds its own per process: at spawn, per
      // close, and two each time it waits for the exit at the end of stdout (`npm test` reached 11). Bounded
      // per process, so Node's leak warning at 10 would only be noise in the server's log.
      child.setMaxListeners(32);
      if (cgroup) {
        // An OOM kill inside takes one process (often a tool's); the turn cannot trust the rest: all go.
        const watch = setInterval(() => {
          if (noteOom()) kill(0).catch(() => undefined);
        }, OOM_POLL_MS);
        watch.unref();
        child.once('exit', () => {
          clearInterval(watch);
          noteOom();
          destroyCgroup().catch(() => undefined);
        });
        child.once('error', () => {
          clearInterval(watch);
          destroyCgroup().catch(() => undefined);
        });
      }
      // The token is worth nothing once its process is gone (or never started).
      const revoke = grant?.revoke;
      if (revoke) child.once('exit', revoke).once('error', revoke);
      const release = wrapped?.release;
      if (release) child.once('exit', release).once('error', release);
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-STDERR_TAIL_BYTES);
      });
      // The SDK aborts this signal after its own graceful close (stdin EOF plus a grace window): by then
      // anything still alive in the tree is an orphan in the making.
      request.signal.addEventListener(
        'abort',
        () => {
          if (tree) killTree(tree, { graceMs: killGraceMs }).catch(() => undefined);
        },
        { once: true },
      );
      return child;
    },
  };
}
