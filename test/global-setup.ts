/**
 * Runs once around the whole suite. At the end it fails the run if any process that a Berth test
 * started (the `claude` CLI, or anything it started) is still alive: no test may leave orphans.
 * Test processes are recognised by the tree marker every Berth subprocess carries and by a config dir
 * under a test data dir (`berth-test-*`), so other programs on the machine are never counted.
 */
import { findProcesses, treeMarkerOf, type ProcessInfo } from '../src/sandbox/process-tree.js';

async function leftovers(): Promise<ProcessInfo[]> {
  return findProcesses(
    (p) =>
      treeMarkerOf(p.env) !== undefined &&
      p.env.some((v) => v.startsWith('CLAUDE_CONFIG_DIR=') && v.includes('/berth-test-')),
  );
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
