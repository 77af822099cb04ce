import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { collectArtifacts } from './artifacts.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const sha = (s: string): string => createHash('sha256').update(s).digest('hex');

async function workDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-artifacts-'));
  dirs.push(dir);
  return dir;
}

describe('collectArtifacts', () => {
  it('returns created and changed files, not unchanged inputs, symlinks or their targets', async () => {
    const cwd = await workDir();
    await writeFile(path.join(cwd, 'same.txt'), 'same');
    await writeFile(path.join(cwd, 'changed.txt'), 'after');
    await mkdir(path.join(cwd, 'sub'));
    await writeFile(path.join(cwd, 'sub', 'new.txt'), 'new');
    await symlink('/etc/passwd', path.join(cwd, 'leak'));
    await symlink('/etc', path.join(cwd, 'sub', 'etc'));
    const inputs = new Map([
      ['same.txt', sha('same')],
      ['changed.txt', sha('before')],
    ]);
    const got = await collectArtifacts(cwd, inputs);
    expect(got.overLimit).toBeUndefined();
    expect(got.symlinks).toBe(2);
    expect(got.artifacts.map((a) => [a.path, a.bytes, a.sha256])).toEqual([
      ['changed.txt', 5, sha('after')],
      ['sub/new.txt', 3, sha('new')],
    ]);
  });

  it('returns nothing, and says why, past the count, size and entry limits', async () => {
    const cwd = await workDir();
    for (const name of ['a', 'b', 'c']) await writeFile(path.join(cwd, name), '12345');
    const base = { maxArtifacts: 10, maxTotalBytes: 100, maxEntries: 100 };
    expect((await collectArtifacts(cwd, new Map(), { ...base, maxArtifacts: 2 })).overLimit).toMatch(
      /over 2 files/,
    );
    expect((await collectArtifacts(cwd, new Map(), { ...base, maxTotalBytes: 14 })).overLimit).toMatch(
      /14 bytes/,
    );
    expect((await collectArtifacts(cwd, new Map(), { ...base, maxEntries: 2 })).overLimit).toMatch(
      /2 entries/,
    );
    const ok = await collectArtifacts(cwd, new Map(), { ...base, maxTotalBytes: 15 });
    expect(ok.overLimit).toBeUndefined();
    expect(ok.artifacts).toHaveLength(3);
  });
});
