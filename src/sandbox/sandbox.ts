/**
 * `--sandbox bwrap`: everything that confines an agent's subprocess tree, put together once per host.
 * - bubblewrap: its own mount, PID, IPC, UTS and network namespaces (see `bwrap.ts`);
 * - its tenant's uid, when the server runs as root (see `agent-uids.ts`); a server that is not root runs
 *   agents as its own uid, which the namespaces still keep away from everything of the server's;
 * - a cgroup per tree with the session's memory ceiling (or the session's own lower limit) and a process
 *   limit (see `cgroups.ts`), or, where no cgroup can be made, `prlimit --nproc` as the fallback (no
 *   memory limit then: say so at start);
 * - no network but the model proxy, through its Unix socket.
 * `open` checks all of it at start and refuses to start with the reason when something cannot work.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  realpathSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { lchown, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { SpawnOptions } from '@anthropic-ai/claude-agent-sdk';
import { BerthError, describeError } from '../errors.js';
import { AgentUids, DEFAULT_AGENT_UIDS, type UidRange } from './agent-uids.js';
import { bwrapArgs, egressEnv, writableDirs, type SystemDir } from './bwrap.js';
import { CgroupRoot, dataDirHash, joinScript, type CgroupLimits } from './cgroups.js';
import { EgressProxy } from './egress-proxy.js';
import type { SpawnOwner, WrappedCommand } from './plain-spawn.js';

export interface SandboxOptions {
  dataDir: string;
  /** `--egress-allow-private`: allowed domains may resolve to loopback and private addresses. */
  egressAllowPrivate: boolean;
  /** `--agent-uids`; undefined: the default range when the server is root, else the server's own uid. */
  uids: UidRange | undefined;
  limits: CgroupLimits;
  /** Lines for the operator (what the sandbox could not do here). */
  log: (line: string) => void;
}

/** Host directories an agent may read (when they exist). */
const SYSTEM_DIRS = ['/usr', '/etc', '/bin', '/sbin', '/lib', '/lib32', '/lib64', '/libx32'];
/** Programs the sandbox runs, besides bwrap: the relay, the uid drop, the ownership of the directories. */
const TOOLS = ['bwrap', 'socat', 'setpriv', 'chown', 'grep', 'sleep'];

export class Sandbox {
  /** Where the model proxy must listen for sandboxed agents (a Unix socket). */
  readonly modelSocket: string;
  private egress: EgressProxy | undefined;
  private readonly system: SystemDir[];
  private readonly uids: AgentUids | undefined;
  private readonly cgroups: CgroupRoot | undefined;
  private readonly runDir: string;
  private readonly identities = new Map<number, { passwd: string; group: string }>();

  private constructor(private readonly options: SandboxOptions) {
    const { dataDir, log } = options;
    this.system = systemDirs();
    this.runDir = runDirOf(dataDir);
    this.modelSocket = path.join(this.runDir, 'model.sock');
    const root = process.getuid?.() === 0;
    if (!root && options.uids) {
      throw new BerthError(
        'invalid_config',
        `--agent-uids needs the server to run as root (it runs as uid ${process.getuid?.()}); without it agents run as the server's uid`,
      );
    }
    this.uids = root ? new AgentUids(dataDir, options.uids ?? DEFAULT_AGENT_UIDS) : undefined;
    if (!root) log(`berth: not root: sandboxed agents run as the server's uid ${process.getuid?.()}`);
    const cgroups = CgroupRoot.open(dataDir);
    this.cgroups = cgroups.ok ? cgroups.root : undefined;
    if (!cgroups.ok) {
      log(
        `berth: no cgroup can be made here (${cgroups.reason}): no memory limit for agents, and ${this.uids ? 'a process limit per tenant uid (prlimit)' : 'no process limit'}`,
      );
    }
    // Only the server reaches the data dir; agents see their own directories, bound in.
    if (statSync(dataDir).uid === process.getuid?.()) chmodSync(dataDir, 0o700);
  }

  /** Checks that agents can be confined here and starts the egress proxy; throws `invalid_config` saying why not. */
  static async open(options: SandboxOptions): Promise<Sandbox> {
    const missing = TOOLS.filter((tool) => !onPath(tool));
    if (missing.length > 0) {
      throw unavailable(
        `${missing.join(', ')} not found (Debian: apt-get install bubblewrap socat util-linux)`,
      );
    }
    const sandbox = new Sandbox(options);
    try {
      await sandbox.probe();
      sandbox.egress = await EgressProxy.start({
        socketPath: path.join(sandbox.runDir, 'egress.sock'),
        allowPrivate: options.egressAllowPrivate,
        onError: (err) => options.log(`berth: egress proxy: ${describeError(err)}`),
      });
      return sandbox;
    } catch (err) {
      // Nothing of a sandbox that could not start stays behind: its run dir, its cgroups' bases.
      await sandbox.close();
      throw err;
    }
  }

  /** The command that runs `request` confined, as `owner`'s. */
  wrap(request: SpawnOptions, owner: SpawnOwner): WrappedCommand {
    const uid = this.uids?.uidFor(owner.tenant);
    const writable = writableDirs(request);
    for (const dir of writable) {
      // Bound read-write and chowned as root: never through a symlink an agent could have planted.
      if (realpathSync(dir) !== dir)
        throw new Error(`refusing to bind ${dir} into a sandbox: it is not a plain directory`);
    }
    // A spare (no owner id yet) starts in its tenant's workspaces directory, which stays the server's.
    const spareCwd = owner.id === undefined ? request.cwd : undefined;
    if (spareCwd !== undefined) keepServers(spareCwd);
    const domains = owner.allowedDomains ?? [];
    const egress = this.egress && domains.length > 0 ? this.egress.grant(domains) : undefined;
    try {
      const args = bwrapArgs(request, this.system, {
        uid,
        identity: uid === undefined ? undefined : this.identity(uid),
        owned: writable.filter((dir) => dir !== spareCwd),
        modelSocket: this.modelSocket,
        egress: egress && { socket: path.join(this.runDir, 'egress.sock'), token: egress.token },
      });
      const release = egress?.revoke;
      const env = egress && egressEnv(egress.token);
      if (!this.cgroups) {
        // RLIMIT_NPROC counts a uid's processes: the tenant's with a uid per tenant (root ignores it).
        // Without one, it would count every process of the server's user: no limit rather than a wrong one.
        if (uid === undefined) return { command: 'bwrap', args, release, env };
        const prlimit = [`--nproc=${this.options.limits.pids}`, '--', 'bwrap', ...args];
        return { command: 'prlimit', args: prlimit, release, env };
      }
      const cgroup = this.cgroups.create(randomUUID(), this.limitsFor(owner));
      const join = `${joinScript(cgroup)}; exec "$@"`;
      return {
        command: '/bin/sh',
        args: ['-c', join, 'berth-cgroup', 'bwrap', ...args],
        cgroup,
        release,
        env,
      };
    } catch (err) {
      // A token for a process that never starts is worth nothing: it goes now.
      egress?.revoke();
      throw err;
    }
  }

  /**
   * Each agent's memory limit (its cgroup's), or undefined where agents get no cgroup: a session may ask
   * for less (`SpawnOwner.memoryBytes`), never for more.
   */
  get agentMemoryBytes(): number | undefined {
    return this.cgroups ? this.options.limits.memoryBytes : undefined;
  }

  /** The host's limits, with the owner's lower memory limit when it has one (never a higher one). */
  private limitsFor(owner: SpawnOwner): CgroupLimits {
    const { limits } = this.options;
    if (owner.memoryBytes === undefined) return limits;
    return { ...limits, memoryBytes: Math.min(owner.memoryBytes, limits.memoryBytes) };
  }

  /**
   * Gives a session's new directories to its tenant's uid. A spawn does that itself (inside, for the
   * whole tree); a claimed spare, started before the session existed, needs it done here.
   */
  async prepareDirs(tenant: string, paths: { cwd: string; configDir: string; home: string }): Promise<void> {
    const uid = this.uids?.uidFor(tenant);
    if (uid === undefined) return;
    // lchown: a directory swapped for a symlink is not followed (nor given away).
    await Promise.all([paths.cwd, paths.configDir, paths.home].map((dir) => lchown(dir, uid, uid)));
  }

  /** Kills what a crashed host's agents left in their cgroups; resolves to the processes killed. */
  sweep(): Promise<number> {
    return this.cgroups?.sweep() ?? Promise.resolve(0);
  }

  /** Removes the run directory (the socket and the identity files); the proxy may still be closing. */
  async close(): Promise<void> {
    this.cgroups?.close();
    await this.egress?.close();
    await rm(this.runDir, { recursive: true, force: true });
  }

  /** One line for the startup log. */
  describe(): string {
    const who = this.uids ? 'a uid per tenant' : `uid ${process.getuid?.()}`;
    const mib = Math.round(this.options.limits.memoryBytes / 1024 ** 2);
    const limits = this.cgroups
      ? `${this.cgroups.describe()}: ${mib} MiB and ${this.options.limits.pids} processes per agent`
      : this.uids
        ? `prlimit: ${this.options.limits.pids} processes per tenant uid, no memory limit`
        : 'no cgroup and no uid of its own: no process or memory limit';
    return `bwrap (${who}; ${limits}; no network but the model and each agent's allowed domains)`;
  }

  /** Runs `true` the way an agent would run; throws what went wrong. */
  private async probe(): Promise<void> {
    const probeDir = path.join(this.runDir, 'probe');
    mkdirSync(probeDir, { recursive: true });
    const request: SpawnOptions = {
      command: '/bin/true',
      args: [],
      cwd: probeDir,
      env: {},
      signal: new AbortController().signal,
    };
    // All of an agent's way in: the cgroup join, the namespaces, the chown and the drop to an agent uid.
    const uid = this.uids ? (this.options.uids ?? DEFAULT_AGENT_UIDS).start : undefined;
    const args = bwrapArgs(request, this.system, { uid, modelSocket: '/dev/null', owned: [probeDir] });
    const cgroup = this.cgroups?.create(`probe-${randomUUID()}`, this.options.limits);
    const [command, argv] = cgroup
      ? ['/bin/sh', ['-c', `${joinScript(cgroup)}; exec "$@"`, 'berth-probe', 'bwrap', ...args]]
      : ['bwrap', args];
    try {
      execFileSync(command, argv, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
    } catch (err) {
      const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
      throw unavailable(stderr || describeError(err));
    } finally {
      await cgroup?.destroy();
    }
  }

  /** passwd and group files that name `uid` (tools ask who they are), made once per uid. */
  private identity(uid: number): { passwd: string; group: string } {
    let files = this.identities.get(uid);
    if (!files) {
      files = {
        passwd: path.join(this.runDir, `passwd-${uid}`),
        group: path.join(this.runDir, `group-${uid}`),
      };
      const system = (file: string): string => readFileSync(file, 'utf8').replace(/\n?$/, '\n');
      // Made anew ('wx': never through something already there).
      for (const [file, text] of [
        [files.passwd, `${system('/etc/passwd')}berth-agent:x:${uid}:${uid}:Berth agent:/tmp:/bin/sh\n`],
        [files.group, `${system('/etc/group')}berth-agent:x:${uid}:\n`],
      ] as const) {
        rmSync(file, { force: true });
        writeFileSync(file, text, { flag: 'wx', mode: 0o644 });
      }
      this.identities.set(uid, files);
    }
    return files;
  }
}

/**
 * A short directory of this data dir's for the model proxy's socket and the identity files (a Unix
 * socket's path must stay under ~100 bytes, which a data dir's may not).
 */
function runDirOf(dataDir: string): string {
  const dir = path.join(os.tmpdir(), `berth-sock-${dataDirHash(dataDir)}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  // A fixed name in a shared directory: one that someone else made (or a symlink) is not ours to use.
  const stat = lstatSync(dir);
  if (!stat.isDirectory() || stat.uid !== process.getuid?.()) {
    throw unavailable(`${dir} exists and is not a directory of this user's; remove it`);
  }
  chmodSync(dir, 0o700);
  return dir;
}

/** Gives `dir` back to the server (0755), whatever an earlier version of Berth left it as. */
function keepServers(dir: string): void {
  const stat = lstatSync(dir);
  const uid = process.getuid?.() ?? stat.uid;
  const gid = process.getgid?.() ?? stat.gid;
  if (stat.uid !== uid || stat.gid !== gid) chownSync(dir, uid, gid);
  if ((stat.mode & 0o7777) !== 0o755) chmodSync(dir, 0o755);
}

function systemDirs(): SystemDir[] {
  return SYSTEM_DIRS.filter((dir) => existsSync(dir)).map((dir) =>
    lstatSync(dir).isSymbolicLink() ? { path: dir, linkTarget: readlinkSync(dir) } : { path: dir },
  );
}

function onPath(program: string): boolean {
  return (process.env.PATH ?? '/usr/bin:/bin')
    .split(':')
    .some((dir) => dir !== '' && existsSync(path.join(dir, program)));
}

function unavailable(why: string): BerthError {
  return new BerthError(
    'invalid_config',
    `--sandbox bwrap: agents cannot be confined on this machine (${why}); fix that, or run with --sandbox none, which leaves agents unconfined`,
  );
}
