/**
 * The cgroups of agent trees, on this machine's real hierarchy (v1 or v2): a process that joined one
 * cannot leave it by `setsid`, its limits are the kernel's, and a new host's sweep kills what a crashed
 * one left there.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually } from '../../test/helpers/wait.js';
import { CgroupRoot, joinScript } from './cgroups.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const dir of dirs.splice(0)) await rm(dir, { recursive: true, force: true });
});

async function openRoot(): Promise<{ root: CgroupRoot; dataDir: string }> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-cgroup-'));
  dirs.push(dataDir);
  const support = CgroupRoot.open(dataDir);
  if (!support.ok) throw new Error(`these tests need a writable cgroup hierarchy: ${support.reason}`);
  return { root: support.root, dataDir };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe('agent cgroups', () => {
  it("holds a job that left its session, and a new host's sweep kills it and removes the cgroup", async () => {
    const { root, dataDir } = await openRoot();
    const cgroup = root.create('crashed-host-tree', { memoryBytes: 256 * 1024 ** 2, pids: 16 });
    // The wrapper joins, then a job escapes into a session of its own; the wrapper exits.
    const wrapper = spawn(
      '/bin/sh',
      ['-c', `${joinScript(cgroup)}; setsid /bin/sleep 4711 </dev/null >/dev/null 2>&1 & echo $!`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    wrapper.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    await new Promise((resolve) => wrapper.once('exit', resolve));
    const escaped = Number(out.trim());
    expect(alive(escaped)).toBe(true);
    expect(cgroup.pids()).toContain(escaped);

    // What the next host on the same data dir does at start.
    const next = CgroupRoot.open(dataDir);
    if (!next.ok) throw new Error(next.reason);
    expect(await next.root.sweep()).toBe(1);
    await eventually(() => !alive(escaped), 'the escaped job killed');
    expect(cgroup.pids()).toEqual([]);
    next.root.close();
  });

  it('stops a tree at its process limit', async () => {
    const { root } = await openRoot();
    const cgroup = root.create('bounded-tree', { memoryBytes: 256 * 1024 ** 2, pids: 8 });
    try {
      const result = await new Promise<string>((resolve) => {
        let text = '';
        const sh = spawn(
          '/bin/sh',
          [
            '-c',
            `${joinScript(cgroup)}; i=0; while [ $i -lt 20 ]; do /bin/sleep 30 & i=$((i+1)); done; echo ok`,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        sh.stdout.on('data', (c: Buffer) => (text += c.toString()));
        sh.stderr.on('data', (c: Buffer) => (text += c.toString()));
        sh.once('exit', () => resolve(text));
      });
      expect(result).toMatch(/fork/i);
      expect(cgroup.pids().length).toBeLessThanOrEqual(8);
    } finally {
      await cgroup.destroy();
      root.close();
    }
    expect(existsSync(cgroup.procsFiles[0]!)).toBe(false);
  });
});
