/**
 * A control group per agent subprocess tree, for its limits and for killing all of it.
 *
 * Each tree gets `<base>/<tree id>` under the cgroup this server runs in, where `<base>` is
 * `berth-<hash of the data dir>`, so that a new host on the same data dir finds what a crashed one left:
 * - cgroup v2 (one unified hierarchy): `memory.max`, `pids.max`, `cpu.weight`; the OOM count is
 *   `oom_kill` in `memory.events`;
 * - cgroup v1 (one hierarchy per controller, what this project's CI machine has): `memory/`, `pids/` and
 *   `cpu/` each get the directory; `memory.limit_in_bytes`, `pids.max`, `cpu.shares`; the OOM count is
 *   `oom_kill` in `memory.oom_control` (Linux 4.13+).
 * A process joins by writing its pid to `cgroup.procs` (see `joinScript`), before it execs the sandbox,
 * so everything it ever starts is inside: `setsid` and a scrubbed environment do not leave a cgroup.
 *
 * Everything here is synchronous on purpose: the SDK's spawn hook is synchronous, and each call is one
 * small write to a kernel file.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface CgroupLimits {
  /** Memory of the whole tree; over it the kernel's OOM killer acts inside the tree only. */
  memoryBytes: number;
  /** Processes and threads of the whole tree (a fork bomb stops here). */
  pids: number;
}

/** What cgroups can do on this machine, or why they cannot. */
export type CgroupSupport = { ok: true; root: CgroupRoot } | { ok: false; reason: string };

const MOUNT = '/sys/fs/cgroup';
const V1_CONTROLLERS = ['memory', 'pids', 'cpu'] as const;
/** How long a removal waits for the last processes of a killed tree to be reaped. */
const REMOVE_TRIES = 50;

/** The cgroups of the agents of one data dir. */
export class CgroupRoot {
  private constructor(
    readonly version: 1 | 2,
    /** The base directory, one per hierarchy (v1: memory, pids, cpu; v2: one). */
    private readonly bases: readonly string[],
  ) {}

  /** Detects v2 or v1, makes the base directories, and says why not when it cannot. */
  static open(dataDir: string): CgroupSupport {
    const name = `berth-${dataDirHash(dataDir)}`;
    const own = ownCgroups();
    try {
      if (existsSync(path.join(MOUNT, 'cgroup.controllers'))) {
        const parent = path.join(MOUNT, own.get('') ?? '/');
        const base = path.join(parent, name);
        mkdirSync(base, { recursive: true });
        // Controllers must be handed down at each level; a parent with processes of its own refuses
        // (the "no internal processes" rule): then this host cannot use v2 here, and says so.
        for (const dir of [parent, base]) {
          writeFileSync(path.join(dir, 'cgroup.subtree_control'), '+memory +pids +cpu');
        }
        return { ok: true, root: new CgroupRoot(2, [base]) };
      }
      const bases = V1_CONTROLLERS.map((c) => path.join(MOUNT, c, own.get(c) ?? '/', name));
      for (const base of bases) mkdirSync(base, { recursive: true });
      return { ok: true, root: new CgroupRoot(1, bases) };
    } catch (err) {
      return { ok: false, reason: (err as Error).message };
    }
  }

  /** Makes the tree's cgroup with its limits. */
  create(id: string, limits: CgroupLimits): AgentCgroup {
    const dirs = this.bases.map((base) => path.join(base, id));
    for (const dir of dirs) mkdirSync(dir);
    const cgroup = new AgentCgroup(this.version, dirs);
    cgroup.setLimits(limits);
    return cgroup;
  }

  /**
   * Kills every process in cgroups a crashed host left under this data dir's base, and removes them;
   * resolves to the number of processes killed.
   */
  async sweep(): Promise<number> {
    let killed = 0;
    const ids = new Set(this.bases.flatMap((base) => subdirs(base)));
    for (const id of ids) {
      const cgroup = new AgentCgroup(
        this.version,
        this.bases.map((base) => path.join(base, id)).filter((dir) => existsSync(dir)),
      );
      killed += cgroup.pids().length;
      await cgroup.destroy();
    }
    return killed;
  }

  /** Removes the base directories when no tree's cgroup is left in them (a live tree keeps them). */
  close(): void {
    for (const base of this.bases) {
      try {
        rmdirSync(base);
      } catch {
        // not empty (a tree still being killed), or gone
      }
    }
  }

  describe(): string {
    return `cgroup v${this.version} under ${this.version === 1 ? path.dirname(this.bases[0] ?? '') : this.bases[0]}`;
  }
}

/** One tree's cgroup. */
export class AgentCgroup {
  constructor(
    readonly version: 1 | 2,
    private readonly dirs: readonly string[],
  ) {}

  /** The files a process writes its pid to, to join (one per hierarchy). */
  get procsFiles(): string[] {
    return this.dirs.map((dir) => path.join(dir, 'cgroup.procs'));
  }

  setLimits(limits: CgroupLimits): void {
    const memory = String(Math.floor(limits.memoryBytes));
    if (this.version === 2) {
      const [dir = ''] = this.dirs;
      writeFileSync(path.join(dir, 'memory.max'), memory);
      // No swap: over its memory the tree is killed, not slowed to a crawl.
      writeIfPresent(path.join(dir, 'memory.swap.max'), '0');
      writeFileSync(path.join(dir, 'pids.max'), String(limits.pids));
      return;
    }
    const [memoryDir = '', pidsDir = ''] = this.dirs;
    writeFileSync(path.join(memoryDir, 'memory.limit_in_bytes'), memory);
    writeIfPresent(path.join(memoryDir, 'memory.memsw.limit_in_bytes'), memory);
    writeFileSync(path.join(pidsDir, 'pids.max'), String(limits.pids));
    // cpu/: the default weight, but per tree: a tree of many processes gets the share of one agent.
  }

  /** How many times the kernel killed a process of this tree for memory. */
  oomKills(): number {
    const [dir = ''] = this.dirs;
    const file = path.join(dir, this.version === 2 ? 'memory.events' : 'memory.oom_control');
    try {
      const match = /^oom_kill (\d+)$/m.exec(readFileSync(file, 'utf8'));
      return match ? Number(match[1]) : 0;
    } catch {
      return 0;
    }
  }

  /** The pids in the tree (every hierarchy's, once). */
  pids(): number[] {
    const pids = new Set<number>();
    for (const file of this.procsFiles) {
      try {
        for (const line of readFileSync(file, 'utf8').split('\n')) if (line) pids.add(Number(line));
      } catch {
        // removed already
      }
    }
    return [...pids];
  }

  /** SIGKILLs every process in the tree, until none is left; then removes the cgroup. */
  async destroy(): Promise<void> {
    for (let i = 0; i < REMOVE_TRIES; i++) {
      const pids = this.pids();
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      if (this.tryRemove()) return;
      await sleep(Math.min(100, 5 * (i + 1)));
    }
    throw new Error(`cgroup ${this.dirs[0]} still has processes after SIGKILL: ${this.pids().join(' ')}`);
  }

  /** Removes the cgroup's directories; false while a process (or an unreaped zombie) is still in one. */
  private tryRemove(): boolean {
    let removed = true;
    for (const dir of this.dirs) {
      try {
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') removed = false;
      }
    }
    return removed;
  }
}

/**
 * The shell lines a wrapper runs to put itself (and so everything it then execs and starts) in the
 * cgroup: `$$` is the wrapper's own pid, which the exec keeps.
 */
export function joinScript(cgroup: AgentCgroup): string {
  return cgroup.procsFiles.map((file) => `echo $$ > ${shellQuote(file)} || exit 125`).join('; ');
}

/** A short name for a data dir, the same for every host process that uses it (cgroups, the run dir). */
export function dataDirHash(dataDir: string): string {
  return createHash('sha256').update(path.resolve(dataDir)).digest('hex').slice(0, 12);
}

export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** This process's cgroup path per v1 controller, and under '' its v2 path (from /proc/self/cgroup). */
function ownCgroups(): Map<string, string> {
  const own = new Map<string, string>();
  try {
    for (const line of readFileSync('/proc/self/cgroup', 'utf8').split('\n')) {
      const [, controllers = '', cgroupPath = ''] = /^\d+:([^:]*):(.*)$/.exec(line) ?? [];
      for (const controller of controllers.split(',')) own.set(controller, cgroupPath);
    }
  } catch {
    // not Linux: the caller's mkdir fails and says so
  }
  return own;
}

function subdirs(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((e) => e.isDirectory())
      .map((e) => e.name);
  } catch {
    return [];
  }
}

/** Best effort: swap limits exist only where swap accounting is on, and may refuse a value. */
function writeIfPresent(file: string, value: string): void {
  try {
    if (existsSync(file)) writeFileSync(file, value);
  } catch {
    // the memory limit alone still holds
  }
}
