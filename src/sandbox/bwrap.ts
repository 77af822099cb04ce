/**
 * The bubblewrap command around the whole `claude` CLI (not only its Bash tool: the Read, Edit and Write
 * tools run in the CLI process, so only wrapping the process confines them). Inside, in a mount
 * namespace of its own, the agent sees:
 *   /usr, /etc (and the /bin, /lib... that point into /usr)   read-only, the system's
 *   /etc/passwd, /etc/group                                     the system's, plus its own uid's entry
 *   the CLI's own directory                                    read-only
 *   its cwd, its CLAUDE_CONFIG_DIR, its HOME                   read-write, bound at the same paths
 *   the directories passed with --add-dir (a group's shared)   read-write
 *   /tmp                                                        a private tmpfs
 *   /proc, /dev                                                 its own PID namespace's, a minimal /dev
 * Nothing else of the host exists there: not the data dir, not other sessions or tenants, not the
 * database, the spool or the blobs. The PID namespace hides the server and every other agent, and its
 * init is bwrap itself: when the tree is killed (or the server dies: --die-with-parent) nothing started
 * inside survives, `setsid` or not.
 *
 * With a network namespace (`model` given) the agent has a loopback of its own and nothing else: no
 * route out, and neither Berth's API nor any other port of the host. The model proxy's Unix socket is
 * bound in, and a `socat` started before the CLI, as root and so out of the agent's reach, relays
 * 127.0.0.1:{@link MODEL_PORT} to it; `ANTHROPIC_BASE_URL` points there.
 *
 * With a `uid`, the command inside starts as root (of the host: bwrap needs its rights to mount), gives
 * the writable directories to the uid, starts the relay, then drops to the uid with no capabilities and
 * no way to gain any (`setpriv`) and execs the CLI.
 */
import path from 'node:path';
import type { SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import { shellQuote } from './cgroups.js';

/** The port inside the sandbox where the model proxy is relayed. */
export const MODEL_PORT = 4180;
/** The port inside the sandbox where the egress proxy is relayed (for agents allowed some domains). */
export const EGRESS_PORT = 4181;
/** Where the model proxy's socket is bound inside. */
const MODEL_SOCKET_INSIDE = '/run/berth/model.sock';
const EGRESS_SOCKET_INSIDE = '/run/berth/egress.sock';
/** How long the wrapper waits for the relays to listen before it starts the CLI anyway (5 ms steps). */
const RELAY_WAIT_STEPS = 400;

export interface Confinement {
  /** The uid (and gid) the agent runs as; unchanged when absent. */
  uid?: number | undefined;
  /**
   * The writable directories given to `uid` (all of them when absent). A spare's cwd, its tenant's
   * workspaces directory, is not: an agent that owned it could swap a session's directory for a symlink.
   */
  owned?: readonly string[] | undefined;
  /** `/etc/passwd` and `/etc/group` files naming `uid`, bound over the system's. */
  identity?: { passwd: string; group: string } | undefined;
  /** The model proxy's Unix socket: given, the agent gets no network but a relay to it. */
  modelSocket?: string | undefined;
  /** The egress proxy's socket and this process's token, for an agent allowed some domains. */
  egress?: { socket: string; token: string } | undefined;
}

/** Host directories the agent may read (when they exist; the links of a merged /usr are recreated). */
export interface SystemDir {
  path: string;
  /** Set when the host's entry is a symlink (`/bin -> usr/bin`). */
  linkTarget?: string | undefined;
}

/** The bwrap argv that runs `request` confined (see the header); `system` from `systemDirs()`. */
export function bwrapArgs(
  request: SpawnOptions,
  system: readonly SystemDir[],
  confine: Confinement,
): string[] {
  const args = ['--die-with-parent', '--new-session', '--unshare-pid', '--unshare-ipc', '--unshare-uts'];
  if (confine.modelSocket) args.push('--unshare-net');
  for (const dir of system) {
    if (dir.linkTarget !== undefined) args.push('--symlink', dir.linkTarget, dir.path);
    else args.push('--ro-bind', dir.path, dir.path);
  }
  if (confine.identity) {
    args.push('--ro-bind', confine.identity.passwd, '/etc/passwd');
    args.push('--ro-bind', confine.identity.group, '/etc/group');
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--perms', '1777', '--tmpfs', '/tmp');
  const cliDir = path.dirname(request.command);
  const writable = writableDirs(request);
  // bwrap makes the directories above a mount point 0700: the agent's uid could not get through them.
  for (const dir of parentsToMake([cliDir, ...writable], system)) args.push('--perms', '0755', '--dir', dir);
  args.push('--ro-bind', cliDir, cliDir);
  for (const dir of writable) args.push('--bind', dir, dir);
  if (confine.modelSocket) {
    args.push('--ro-bind', confine.modelSocket, MODEL_SOCKET_INSIDE);
    args.push('--setenv', 'ANTHROPIC_BASE_URL', `http://127.0.0.1:${MODEL_PORT}`);
  }
  if (confine.modelSocket && confine.egress) {
    // The proxy variables (with the token) come through the environment (see `egressEnv`), not argv,
    // which every process of the host's PID namespace can read.
    args.push('--ro-bind', confine.egress.socket, EGRESS_SOCKET_INSIDE);
  }
  if (request.cwd) args.push('--chdir', request.cwd);
  const script = innerScript(confine.owned ?? writable, confine);
  const command = script ? ['/bin/sh', '-c', script, 'berth-agent', request.command] : [request.command];
  return [...args, '--', ...command, ...request.args];
}

/**
 * What runs inside before the CLI: the ownership of its directories, the model relay, the drop to the
 * agent's uid. Empty when there is nothing to do (the CLI is then exec'd directly).
 */
function innerScript(writable: readonly string[], confine: Confinement): string {
  const relays: [number, string][] = [];
  if (confine.modelSocket) relays.push([MODEL_PORT, MODEL_SOCKET_INSIDE]);
  if (confine.modelSocket && confine.egress) relays.push([EGRESS_PORT, EGRESS_SOCKET_INSIDE]);
  // The relays start first, so that they come up while the ownership is set. nodelay: without it a
  // kept-alive client's small writes wait on delayed ACKs (~40 ms per request, measured).
  const lines = relays.map(
    ([port, socket]) =>
      `socat TCP-LISTEN:${port},bind=127.0.0.1,fork,reuseaddr,nodelay UNIX-CONNECT:${socket} </dev/null >/dev/null 2>&1 &`,
  );
  if (confine.uid !== undefined) {
    // Berth writes into these too (a restored workspace, a transcript brought back from the store).
    const id = `${confine.uid}:${confine.uid}`;
    lines.push(`chown -R -- ${id} ${writable.map(shellQuote).join(' ')} || exit 126`);
  }
  if (relays.length > 0) {
    // Every relay listening (state 0A in /proc/net/tcp) before the CLI starts, or the bound passes.
    const listening = relays
      .map(
        ([port]) =>
          `grep -q ':${port.toString(16).toUpperCase().padStart(4, '0')} 00000000:0000 0A' /proc/net/tcp`,
      )
      .join(' && ');
    lines.push(
      `i=0; until { ${listening}; } || [ $i -ge ${RELAY_WAIT_STEPS} ]; do sleep 0.005; i=$((i+1)); done`,
    );
  }
  if (lines.length === 0) return '';
  if (confine.uid === undefined) return [...lines, 'exec "$@"'].join('\n');
  const uid = confine.uid;
  lines.push(
    `exec setpriv --reuid=${uid} --regid=${uid} --clear-groups --inh-caps=-all --bounding-set=-all --no-new-privs -- "$@"`,
  );
  return lines.join('\n');
}

/** The directories above `mountPoints` that bwrap would make, shallowest first, each once. */
function parentsToMake(mountPoints: readonly string[], system: readonly SystemDir[]): string[] {
  const exists = new Set(['/', '/tmp', '/proc', '/dev', ...system.map((d) => d.path)]);
  const made = new Set<string>();
  for (const mountPoint of mountPoints) {
    const parts = mountPoint.split('/').filter(Boolean);
    for (let i = 1; i < parts.length; i++) {
      const dir = `/${parts.slice(0, i).join('/')}`;
      const underSystem = system.some((d) => dir.startsWith(`${d.path}/`));
      if (!exists.has(dir) && !underSystem) made.add(dir);
    }
  }
  return [...made];
}

/**
 * The environment an agent allowed some domains gets for them: HTTPS only (the proxy refuses plain HTTP);
 * the model's relay is plain HTTP on loopback, never proxied.
 */
export function egressEnv(token: string): Record<string, string> {
  const proxyUrl = `http://agent:${token}@127.0.0.1:${EGRESS_PORT}`;
  return {
    HTTPS_PROXY: proxyUrl,
    https_proxy: proxyUrl,
    NO_PROXY: '127.0.0.1,localhost',
    no_proxy: '127.0.0.1,localhost',
  };
}

/** The directories the agent writes: its cwd, config dir, home and any `--add-dir`, each once. */
export function writableDirs(request: SpawnOptions): string[] {
  const dirs = [request.cwd, request.env.CLAUDE_CONFIG_DIR, request.env.HOME];
  // The SDK passes each additional directory as `--add-dir=PATH` (and older ones as two arguments).
  request.args.forEach((arg, i) => {
    if (arg.startsWith('--add-dir=')) dirs.push(arg.slice('--add-dir='.length));
    else if (arg === '--add-dir') dirs.push(request.args[i + 1]);
  });
  return [...new Set(dirs.filter((d): d is string => typeof d === 'string' && path.isAbsolute(d)))];
}
