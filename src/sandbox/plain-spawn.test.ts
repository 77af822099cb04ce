import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createPlainSpawner } from './plain-spawn.js';
import { listTree } from './process-tree.js';

describe('the plain spawner', () => {
  it('gives a tree the configured kill grace when the SDK aborts it, then kills all of it', async () => {
    const cwd = await mkdtemp(path.join(os.tmpdir(), 'berth-spawn-'));
    const spawner = createPlainSpawner({ killGraceMs: 3_000 });
    const abort = new AbortController();
    try {
      // A CLI stand-in that ignores SIGTERM: only the SIGKILL after the grace ends it.
      const child = spawner.spawn({
        command: 'bash',
        args: ['-c', 'trap "" TERM; sleep 300 & echo ready; wait'],
        cwd,
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin' },
        signal: abort.signal,
      });
      const tree = spawner.tree!;
      // Only once bash says so are both processes ignoring SIGTERM.
      await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
      const aborted = Date.now();
      abort.abort();
      // Well inside the 3 s grace (the old hard-coded grace was 1 s): SIGTERM was sent and ignored.
      await new Promise((r) => setTimeout(r, 1_800));
      const alive = await listTree(tree);
      expect(alive.length, 'the tree was killed before its grace ran out').toBeGreaterThan(0);
      while ((await listTree(tree)).length > 0) await new Promise((r) => setTimeout(r, 50));
      expect(Date.now() - aborted).toBeGreaterThanOrEqual(3_000);
    } finally {
      await spawner.kill(0);
      await rm(cwd, { recursive: true, force: true });
    }
  });
});
