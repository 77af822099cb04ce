/**
 * Finding and killing everything a subprocess started.
 *
 * The `claude` CLI is spawned as the leader of a new session and process group (`detached: true`, which
 * calls setsid). Its tools run shells, and a shell may put a background job in a process group of its own
 * or leave it orphaned (re-parented to init), so neither the parent chain nor the process group alone
 * finds everything. A process belongs to the tree when any of these holds:
 * - its process group is the leader's (`kill(-pgid)` reaches it),
 * - its session id is the leader's (survives `setpgid` and re-parenting),
 * - its environment carries the tree's marker variable (survives `setsid` too, unless the program
 *   scrubbed its environment on purpose).
 * Linux only: it reads /proc.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';

/** The environment variable every process of a tree inherits; its value names the tree. */
export const TREE_MARKER_VAR = 'BERTH_PROCESS_TREE';

export interface ProcessTreeId {
  /** The leader's pid, which is also the pgid and sid of the tree. */
  leaderPid: number;
  /** The value of {@link TREE_MARKER_VAR} in the tree's environment. */
  marker: string;
}

interface ProcStat {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  state: string;
}

/** Parses /proc/PID/stat; the command name (field 2) may contain spaces and parentheses. */
function parseStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const pid = Number.parseInt(text, 10);
  const rest = text.slice(close + 2).split(' ');
  // rest[0] is field 3 (state); fields are 1-based in proc(5).
  const field = (n: number): number => Number(rest[n - 3]);
  return { pid, state: rest[0] ?? '?', ppid: field(4), pgid: field(5), sid: field(6) };
}

async function readStat(pid: number): Promise<ProcStat | undefined> {
  try {
    return parseStat(await readFile(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined; // gone, or never existed
  }
}

async function hasMarker(pid: number, marker: string): Promise<boolean> {
  try {
    const env = await readFile(`/proc/${pid}/environ`, 'latin1');
    return env.split('\0').includes(`${TREE_MARKER_VAR}=${marker}`);
  } catch {
    return false;
  }
}

async function allPids(): Promise<number[]> {
  const names = await readdir('/proc');
  const pids: number[] = [];
  for (const name of names) {
    const pid = Number(name);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid) pids.push(pid);
  }
  return pids;
}

/** The live (not zombie) processes of the tree, leader included when alive. */
export async function listTree(tree: ProcessTreeId): Promise<ProcStat[]> {
  // /proc reads are independent: issued together, a scan of ~100 processes takes a third of the time.
  const stats = await Promise.all((await allPids()).map((pid) => readStat(pid)));
  const members = await Promise.all(
    stats.map(async (stat) => {
      if (!stat || stat.state === 'Z') return undefined;
      const member =
        stat.pid === tree.leaderPid ||
        stat.pgid === tree.leaderPid ||
        stat.sid === tree.leaderPid ||
        (await hasMarker(stat.pid, tree.marker));
      return member ? stat : undefined;
    }),
  );
  return members.filter((stat): stat is ProcStat => stat !== undefined);
}

/**
 * Resident memory of the whole tree, in bytes: the sum of each member's `VmRSS`. That field is in kB
 * whatever the kernel's page size (4 KiB on x86-64, often 16 or 64 KiB on arm64 and ppc64), and is summed
 * exactly, where the pages in /proc/PID/stat come from per-CPU counters that recent kernels only
 * approximate (measured here: 410 pages in stat against 453 in statm and VmRSS for an idle `sleep`).
 */
export async function treeRssBytes(tree: ProcessTreeId): Promise<number> {
  const procs = await listTree(tree);
  const sizes = await Promise.all(procs.map((p) => residentBytes(p.pid)));
  return sizes.reduce((sum, bytes) => sum + bytes, 0);
}

/** `VmRSS` of /proc/PID/status in bytes; 0 for a process that is gone or has no memory of its own. */
async function residentBytes(pid: number): Promise<number> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const kb = /^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1];
    return kb === undefined ? 0 : Number(kb) * 1024;
  } catch {
    return 0; // exited since the scan
  }
}

function signalAll(pids: readonly number[], signal: NodeJS.Signals, leaderPid: number): void {
  if (leaderPid > 0) {
    try {
      process.kill(-leaderPid, signal);
    } catch {
      // the group is already empty
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // already gone
    }
  }
}

/**
 * SIGTERM to every process of the tree, up to `graceMs` for them to exit, then SIGKILL to whatever is
 * left. Resolves when nothing of the tree is alive (or after a bounded wait past SIGKILL, which only a
 * process stuck in uninterruptible sleep survives).
 */
export async function killTree(tree: ProcessTreeId, options: { graceMs: number }): Promise<void> {
  let procs = await listTree(tree);
  if (procs.length === 0) return;
  signalAll(
    procs.map((p) => p.pid),
    'SIGTERM',
    tree.leaderPid,
  );
  const deadline = Date.now() + options.graceMs;
  // Most trees are gone within a few milliseconds of the signal: look early, then back off.
  for (let poll = 10; Date.now() < deadline; poll = Math.min(50, poll * 2)) {
    await sleep(Math.min(poll, Math.max(1, deadline - Date.now())));
    procs = await listTree(tree);
    if (procs.length === 0) return;
  }
  // A process may have forked during the grace period, so SIGKILL until a scan comes back empty.
  for (let round = 0; round < 20 && procs.length > 0; round++) {
    signalAll(
      procs.map((p) => p.pid),
      'SIGKILL',
      tree.leaderPid,
    );
    await sleep(round === 0 ? 10 : 50);
    procs = await listTree(tree);
  }
}

export interface ProcessInfo {
  pid: number;
  /** The command line, arguments joined by spaces. */
  cmdline: string;
  /** The environment, as `NAME=value` strings. */
  env: string[];
}

/**
 * Live (not zombie) processes that satisfy `match`. It reads every process's command line and
 * environment: for sweeps, tests and tools, not for hot paths.
 */
export async function findProcesses(match: (p: ProcessInfo) => boolean): Promise<ProcessInfo[]> {
  const found: ProcessInfo[] = [];
  for (const pid of await allPids()) {
    try {
      const stat = await readStat(pid);
      if (!stat || stat.state === 'Z') continue;
      const [env, cmdline] = await Promise.all([
        readFile(`/proc/${pid}/environ`, 'latin1'),
        readFile(`/proc/${pid}/cmdline`, 'utf8'),
      ]);
      const info = { pid, cmdline: cmdline.replaceAll('\0', ' ').trim(), env: env.split('\0') };
      if (match(info)) found.push(info);
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** The value of the tree marker in an environment, if any. */
export function treeMarkerOf(env: readonly string[]): string | undefined {
  return env.find((v) => v.startsWith(`${TREE_MARKER_VAR}=`))?.slice(TREE_MARKER_VAR.length + 1);
}

/**
 * Kills every marked process whose environment satisfies `belongs` (e.g. a config dir under this host's
 * data dir), whatever tree it was in. A host that was SIGKILLed could not end its subprocesses; the next
 * host on the same data dir calls this at start so that none of them outlive it. Returns how many
 * processes it found.
 */
export async function sweepMarkedProcesses(
  belongs: (env: readonly string[]) => boolean,
  options: { graceMs: number },
): Promise<number> {
  const found = await findProcesses((p) => treeMarkerOf(p.env) !== undefined && belongs(p.env));
  const markers = new Set(found.map((p) => treeMarkerOf(p.env)!));
  // No live leader is known for these trees: pid -1 matches no process group, so the marker decides.
  await Promise.all([...markers].map((marker) => killTree({ leaderPid: -1, marker }, options)));
  return found.length;
}

/**
 * SIGKILLs, synchronously, every marked process whose environment satisfies `belongs`: the last act of a
 * host that must exit now (a second SIGTERM, a missed drain deadline). Returns how many it signalled.
 */
export function killMarkedProcessesNow(belongs: (env: readonly string[]) => boolean): number {
  let killed = 0;
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
      if (treeMarkerOf(env) === undefined || !belongs(env)) continue;
      process.kill(pid, 'SIGKILL');
      killed += 1;
    } catch {
      // gone, or not ours to read
    }
  }
  return killed;
}
