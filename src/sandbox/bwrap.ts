/**
 * The bubblewrap sandbox around the whole `claude` CLI (not only its Bash tool: the Read, Edit and Write
 * tools run in the CLI process, so only wrapping the process confines them). Inside, in a mount
 * namespace of its own, the agent sees:
 *   /usr, /etc (and the /bin, /lib... that point into /usr)   read-only, the system's
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
 * Not yet (issue 10): a uid of the tenant's, cgroup limits, and a network namespace (the agent still
 * reaches loopback, where Berth's model proxy listens).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import { BerthError, describeError } from '../errors.js';

/** Host directories the agent may read (when they exist and are not symlinks into /usr). */
const SYSTEM_DIRS = ['/usr', '/etc', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];

/** The bwrap command and arguments that run `request` confined (see the header). */
export function bwrapCommand(request: SpawnOptions, bwrap = 'bwrap'): { command: string; args: string[] } {
  const args = ['--die-with-parent', '--new-session', '--unshare-pid', '--unshare-ipc', '--unshare-uts'];
  for (const dir of SYSTEM_DIRS) {
    if (!existsSync(dir)) continue;
    const stat = lstatSync(dir);
    if (stat.isSymbolicLink()) {
      // Merged /usr: /bin -> usr/bin and so on; the link is recreated, its target is already bound.
      args.push('--symlink', pathOfLink(dir), dir);
    } else {
      args.push('--ro-bind', dir, dir);
    }
  }
  args.push('--proc', '/proc', '--dev', '/dev', '--tmpfs', '/tmp');
  args.push('--ro-bind', path.dirname(request.command), path.dirname(request.command));
  for (const dir of writableDirs(request)) args.push('--bind', dir, dir);
  if (request.cwd) args.push('--chdir', request.cwd);
  return { command: bwrap, args: [...args, '--', request.command, ...request.args] };
}

/** The directories the agent writes: its cwd, config dir, home and any `--add-dir`, each once. */
function writableDirs(request: SpawnOptions): string[] {
  const dirs = [request.cwd, request.env.CLAUDE_CONFIG_DIR, request.env.HOME];
  // The SDK passes each additional directory as `--add-dir=PATH` (and older ones as two arguments).
  request.args.forEach((arg, i) => {
    if (arg.startsWith('--add-dir=')) dirs.push(arg.slice('--add-dir='.length));
    else if (arg === '--add-dir') dirs.push(request.args[i + 1]);
  });
  return [...new Set(dirs.filter((d): d is string => typeof d === 'string' && path.isAbsolute(d)))];
}

function pathOfLink(link: string): string {
  return readlinkSync(link);
}

/**
 * Checks, once at start, that bubblewrap runs here with the namespaces it needs; throws
 * `invalid_config` saying why when it does not (no bwrap, user namespaces off, a seccomp profile).
 */
export function checkBwrap(bwrap = 'bwrap'): void {
  try {
    const probe = bwrapCommand(
      { command: '/bin/true', args: [], cwd: '/', env: {}, signal: new AbortController().signal },
      bwrap,
    );
    execFileSync(probe.command, probe.args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    throw new BerthError(
      'invalid_config',
      `--sandbox bwrap: bubblewrap cannot confine agents on this machine (${stderr || describeError(err)}); install it (Debian: apt-get install bubblewrap) or run with --sandbox none, which leaves agents unconfined`,
    );
  }
}
