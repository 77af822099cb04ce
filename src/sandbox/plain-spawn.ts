/**
 * The plain spawner: runs the `claude` CLI as an ordinary child process, but as the leader of its own
 * session and process group, marked so that {@link killTree} can find everything it starts.
 */
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import type { SpawnedProcess, SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import type { ModelGrant } from './model-proxy.js';
import { TREE_MARKER_VAR, killTree, type ProcessTreeId } from './process-tree.js';

/** The last bytes of a subprocess's stderr kept for error messages. */
const STDERR_TAIL_BYTES = 8 * 1024;

export interface SpawnedTree {
  /** Set once the SDK has asked for the process. */
  readonly tree: ProcessTreeId | undefined;
  /** The tail of the CLI's stderr, for error reports. */
  stderrTail(): string;
  /** Kills the whole tree (idempotent); resolves when it is gone. */
  kill(graceMs: number): Promise<void>;
  /** Pass as `options.spawnClaudeCodeProcess`. */
  spawn(options: SpawnOptions): SpawnedProcess;
}

export interface PlainSpawnerOptions {
  /** SIGTERM-to-SIGKILL grace of the kill that follows the SDK's abort (`--kill-grace`). */
  killGraceMs: number;
  /**
   * The model credential of each process (see `ModelProxy.grant`): its `ANTHROPIC_BASE_URL` and a token
   * of its own in `ANTHROPIC_API_KEY`, revoked when the process exits. Without it the environment the
   * SDK passes is used as it is.
   */
  grant?: (() => ModelGrant) | undefined;
  /** Runs the CLI inside something (a sandbox, see `bwrap.ts`): the command and argv that do. */
  wrap?: ((request: SpawnOptions) => { command: string; args: string[] }) | undefined;
}

/** One spawner per subprocess: it remembers the tree it started so the owner can kill all of it. */
export function createPlainSpawner(options: PlainSpawnerOptions): SpawnedTree {
  const { killGraceMs } = options;
  let tree: ProcessTreeId | undefined;
  let stderr = '';
  let killing: Promise<void> | undefined;
  return {
    get tree() {
      return tree;
    },
    stderrTail: () => stderr,
    kill(graceMs) {
      if (!tree) return Promise.resolve();
      killing ??= killTree(tree, { graceMs });
      return killing;
    },
    spawn(request) {
      const marker = randomUUID();
      const grant = options.grant?.();
      const credential = grant && { ANTHROPIC_BASE_URL: grant.baseUrl, ANTHROPIC_API_KEY: grant.token };
      const { command, args } = options.wrap?.(request) ?? request;
      const child = spawn(command, args, {
        cwd: request.cwd,
        env: { ...request.env, ...credential, [TREE_MARKER_VAR]: marker },
        detached: true,
        stdio: ['pipe', 'pipe', 'pipe'],
      });
      if (child.pid !== undefined) tree = { leaderPid: child.pid, marker };
      // The token is worth nothing once its process is gone (or never started).
      if (grant) child.once('exit', () => grant.revoke()).once('error', () => grant.revoke());
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
