/**
 * Runs once around the whole suite. At the end it fails the run if any process that a Berth test
 * started (the `claude` CLI, or anything it started) is still alive: no test may leave orphans.
 * Test processes are recognised by the tree marker every Berth subprocess carries and by a config dir
 * under a test data dir (`berth-test-*`), so other programs on the machine are never counted.
 *
 * Several test runs may share the machine (a developer's and a helper's). A run only judges the trees it
 * owns or that nobody owns: a tree whose parent outside it is this process or one of its descendants, or
 * is gone (the tree was re-parented to init). Another live run's trees are left alone.
 */
import { readFileSync } from 'node:fs';
import { findProcesses, treeMarkerOf, type ProcessInfo } from '../src/sandbox/process-tree.js';

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** Whether `pid` is this process or one of its descendants. */
function isOurs(pid: number): boolean {
  for (let at: number | undefined = pid, hops = 0; at !== undefined && at > 1 && hops < 64; hops++) {
    if (at === process.pid) return true;
    at = parentOf(at);
  }
  return false;
}

/** Test processes of this run, or of no live run. */
async function leftovers(): Promise<ProcessInfo[]> {
  const marked = await findProcesses(
    (p) =>
      treeMarkerOf(p.env) !== undefined &&
      p.env.some((v) => v.startsWith('CLAUDE_CONFIG_DIR=') && v.includes('/berth-test-')),
  );
  const pids = new Set(marked.map((p) => p.pid));
  const trees = new Map<string, ProcessInfo[]>();
  for (const p of marked) {
    const marker = treeMarkerOf(p.env)!;
    trees.set(marker, [...(trees.get(marker) ?? []), p]);
  }
  const judged: ProcessInfo[] = [];
  for (const tree of trees.values()) {
    const owners = tree.map((p) => parentOf(p.pid)).filter((ppid) => ppid !== undefined && !pids.has(ppid));
    const ownedElsewhere = owners.some((ppid) => ppid! > 1 && !isOurs(ppid!));
    if (!ownedElsewhere) judged.push(...tree);
  }
  return judged;
}

function killAll(list: readonly ProcessInfo[]): void {
  for (const p of list) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

export default async function setup(): Promise<() => Promise<void>> {
  const before = await leftovers();
  if (before.length > 0) {
    process.stderr.write(`global-setup: killing ${before.length} process(es) left by an earlier run\n`);
    killAll(before);
  }
  return async () => {
    // Sessions end their trees with a grace period; give the last ones a moment.
    let left = await leftovers();
    for (let i = 0; i < 50 && left.length > 0; i++) {
      await new Promise((r) => setTimeout(r, 100));
      left = await leftovers();
    }
    if (left.length > 0) {
      killAll(left);
      throw new Error(
        `Berth tests left ${left.length} process(es) behind:\n${left.map((p) => `  ${p.pid} ${p.cmdline.slice(0, 200)}`).join('\n')}`,
      );
    }
  };
}
