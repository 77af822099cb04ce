import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { randomUUID } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { TREE_MARKER_VAR, killTree, listTree, treeRssBytes } from './process-tree.js';

function stateOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0]!;
  } catch {
    return 'gone';
  }
}

describe('process trees', () => {
  it('finds and kills a detached leader, its group, a setsid escapee and an orphan', async () => {
    const marker = randomUUID();
    // The shell starts: a background sleep in its group, a sleep in a new session (setsid) that only the
    // marker finds, and exits-then-orphans nothing itself; it ignores SIGTERM so SIGKILL must follow.
    const leader = spawn(
      'bash',
      ['-c', 'trap "" TERM; sleep 300 & setsid sleep 301 & (sleep 302 &) ; sleep 303 & wait'],
      { detached: true, stdio: 'ignore', env: { PATH: process.env.PATH, [TREE_MARKER_VAR]: marker } },
    );
    const tree = { leaderPid: leader.pid!, marker };
    let members: number[] = [];
    for (let i = 0; i < 100 && members.length < 5; i++) {
      members = (await listTree(tree)).map((p) => p.pid);
      await new Promise((r) => setTimeout(r, 20));
    }
    expect(members.length).toBeGreaterThanOrEqual(5);
    expect(await treeRssBytes(tree)).toBeGreaterThan(0);
    await killTree(tree, { graceMs: 200 });
    expect(await listTree(tree)).toEqual([]);
    // Gone, or a zombie waiting for a reaper (in some containers PID 1 never reaps orphans).
    for (const pid of members) expect(['gone', 'Z']).toContain(stateOf(pid));
  });

  it('is a no-op for a tree that is already gone', async () => {
    const env = { PATH: process.env.PATH };
    // A tree whose leader has exited and been reaped, and a live process of another tree.
    const marker = randomUUID();
    const gone = spawn('true', [], {
      detached: true,
      stdio: 'ignore',
      env: { ...env, [TREE_MARKER_VAR]: marker },
    });
    await new Promise((resolve) => gone.once('exit', resolve));
    const bystander = spawn('sleep', ['60'], {
      detached: true,
      stdio: 'ignore',
      env: { ...env, [TREE_MARKER_VAR]: randomUUID() },
    });
    const tree = { leaderPid: gone.pid!, marker };
    const kill = vi.spyOn(process, 'kill');
    try {
      expect(await listTree(tree)).toEqual([]);
      await killTree(tree, { graceMs: 10 });
      // No signal at all: not to the gone leader's group (its pgid may be reused), nor to any pid.
      expect(kill).not.toHaveBeenCalled();
      expect(stateOf(bystander.pid!)).not.toMatch(/^(gone|Z)$/);
      expect(await listTree(tree)).toEqual([]);
    } finally {
      kill.mockRestore();
      bystander.kill('SIGKILL');
    }
  });
});

describe('the RSS of a tree', () => {
  it('is what the kernel counts, in bytes, whatever its page size', async () => {
    const pageSize = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());
    const marker = randomUUID();
    const child = spawn('sleep', ['60'], {
      detached: true,
      stdio: 'ignore',
      env: { PATH: process.env.PATH, [TREE_MARKER_VAR]: marker },
    });
    const tree = { leaderPid: child.pid!, marker };
    try {
      // statm's second field is the resident size in pages; an idle `sleep` stops changing once started.
      const statmBytes = (): number =>
        Number(readFileSync(`/proc/${child.pid}/statm`, 'utf8').split(' ')[1]) * pageSize;
      let last = -1;
      for (let i = 0; i < 200; i++) {
        await new Promise((r) => setTimeout(r, 20));
        const now = statmBytes();
        if (now > 0 && now === last) break;
        last = now;
      }
      expect(last).toBeGreaterThan(0);
      expect(await treeRssBytes(tree)).toBe(statmBytes());
    } finally {
      await killTree(tree, { graceMs: 200 });
    }
  });
});
