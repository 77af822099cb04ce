import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { LOCK_FILE, lockDataDir } from './data-dir-lock.js';

let dir: string;
let file: string;

beforeEach(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-lock-'));
  file = path.join(dir, LOCK_FILE);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function startTimeOf(pid: number): string {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
}

/** A process that has exited, so its pid names nothing (or, rarely, a newer process). */
async function deadPid(): Promise<number> {
  const child = spawn('true', { stdio: 'ignore' });
  await new Promise((resolve) => child.on('exit', resolve));
  return child.pid!;
}

async function refusal(): Promise<string> {
  try {
    await lockDataDir(dir);
  } catch (err) {
    if (isBerthError(err, 'data_dir_locked')) return err.message;
    throw err;
  }
  throw new Error('the lock was taken');
}

describe('the data dir lock', () => {
  it('holds the pid, refuses a second holder by name, and is released on release()', async () => {
    const lock = await lockDataDir(path.join(dir, 'made', 'here'));
    const nested = path.join(dir, 'made', 'here', LOCK_FILE);
    expect((await readFile(nested, 'utf8')).split('\n')[0]).toBe(String(process.pid));
    expect(lock.held).toBe(true);
    // This process is alive: a second core on the same data dir is refused like another process.
    await expect(lockDataDir(path.join(dir, 'made', 'here'))).rejects.toThrow(`(pid ${process.pid},`);
    await lock.release();
    await lock.release();
    expect(lock.held).toBe(false);
    // Nothing is left beside it (the copy written aside before the link is gone too).
    expect(await readdir(path.dirname(nested))).toEqual([]);
    const again = await lockDataDir(path.join(dir, 'made', 'here'));
    await again.release();
  });

  it('refuses while another live process holds it, and takes it over once that process is gone', async () => {
    const holder = spawn('sleep', ['60'], { stdio: 'ignore' });
    const exited = new Promise((resolve) => holder.on('exit', resolve));
    try {
      await writeFile(file, `${holder.pid}\n${startTimeOf(holder.pid!)}\n`);
      expect(await refusal()).toMatch(new RegExp(`in use by another berth process \\(pid ${holder.pid},`));
      expect(await readFile(file, 'utf8')).toContain(String(holder.pid));
    } finally {
      holder.kill('SIGKILL');
      await exited;
    }
    const lock = await lockDataDir(dir);
    expect((await readFile(file, 'utf8')).split('\n')[0]).toBe(String(process.pid));
    await lock.release();
  });

  it('takes over a lock whose pid is dead, or now names another process', async () => {
    await writeFile(file, `${await deadPid()}\n1\n`);
    const first = await lockDataDir(dir);
    await first.release();
    // Our own pid, but not our start time: the holder died and its pid went to this process.
    await writeFile(file, `${process.pid}\n${Number(startTimeOf(process.pid)) - 1}\n`);
    const second = await lockDataDir(dir);
    expect(await readFile(file, 'utf8')).toBe(`${process.pid}\n${startTimeOf(process.pid)}\n`);
    await second.release();
    expect(existsSync(file)).toBe(false);
  });

  it('does not remove a lock that another process took over', async () => {
    const lock = await lockDataDir(dir);
    await writeFile(file, '1\n1\n');
    await lock.release();
    expect(await readFile(file, 'utf8')).toBe('1\n1\n');
  });
});
