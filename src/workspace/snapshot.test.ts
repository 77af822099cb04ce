/**
 * Workspace snapshots on a DirBlobStore: round trips, the size limit, and archives built by hand to
 * escape the workspace (which must be refused without writing anything anywhere).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  chmod,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  stat,
  symlink,
  utimes,
  writeFile,
} from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import type { Headers } from 'tar-stream';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { DirBlobStore } from './dir-blob-store.js';
import { restoreWorkspace, snapshotWorkspace } from './snapshot.js';

const scratch = await mkdtemp(path.join(tmpdir(), 'berth-snapshot-test-'));
afterAll(() => rm(scratch, { recursive: true, force: true }));

/** Fresh state for one case: a base directory holding a blob store, a temp dir and workspaces. */
let base: string;
let blob: DirBlobStore;
let tmpDir: string;
beforeEach(async () => {
  base = await mkdtemp(path.join(scratch, 'case-'));
  blob = new DirBlobStore({ root: path.join(base, 'blobs') });
  tmpDir = path.join(base, 'tmp');
});

const PAST = new Date('2020-01-02T03:04:05.750Z');
const LONG_DIR = `${'a'.repeat(60)}/${'b'.repeat(60)}`;
const LONG_FILE = `${'l'.repeat(120)}.txt`;

/** A workspace with a bit of everything a snapshot keeps, and a FIFO, which it leaves out. */
async function makeWorkspace(dir: string): Promise<void> {
  const file = async (name: string, data: string | Buffer, mode = 0o644) => {
    await mkdir(path.dirname(path.join(dir, name)), { recursive: true });
    await writeFile(path.join(dir, name), data);
    await chmod(path.join(dir, name), mode);
  };
  await file('CLAUDE.md', '# Project\n\nBe nice.\n');
  await file('src/index.ts', 'export const x = 1;\n');
  await file('src/nested/deep/util.ts', 'export const y = 2;\n');
  await file('bin/run.sh', '#!/bin/sh\necho hi\n', 0o755);
  await file('readonly.txt', 'do not touch', 0o444);
  await file('data.bin', randomBytes(256 * 1024 + 5));
  await file('zero-length', '');
  await file(`${LONG_DIR}/${LONG_FILE}`, 'long');
  await file('ünïcødé/файл.txt', 'unicode');
  await mkdir(path.join(dir, 'empty'));
  await mkdir(path.join(dir, 'private'), { mode: 0o700 });
  await file('private/secret.txt', 'shh', 0o600);
  await symlink('src/nested', path.join(dir, 'link-to-dir'));
  await symlink('/etc/hostname', path.join(dir, 'link-absolute'));
  await symlink('does-not-exist', path.join(dir, 'link-dangling'));
  execFileSync('mkfifo', [path.join(dir, 'a-fifo')]);
  await setTimes(dir);
}

/** Every path under `dir`, relative, without following symlinks (`readdir`'s `recursive` follows them). */
async function listTree(dir: string, rel = ''): Promise<string[]> {
  const found: string[] = [];
  for (const name of await readdir(path.join(dir, rel))) {
    const child = rel === '' ? name : `${rel}/${name}`;
    found.push(child);
    const stats = await lstat(path.join(dir, child));
    if (stats.isDirectory()) found.push(...(await listTree(dir, child)));
  }
  return found;
}

/** Sets every mtime under `dir` to PAST, directories last (deepest first). */
async function setTimes(dir: string): Promise<void> {
  const entries = await listTree(dir);
  const sorted = entries.sort((a, b) => b.split('/').length - a.split('/').length);
  for (const rel of sorted) {
    const full = path.join(dir, rel);
    if ((await lstat(full)).isSymbolicLink()) continue;
    await utimes(full, PAST, PAST);
  }
}

/** Everything under `dir` that a comparison of two workspaces looks at. */
async function describeTree(dir: string): Promise<string[]> {
  const lines: string[] = [];
  for (const rel of (await listTree(dir)).sort()) {
    const full = path.join(dir, rel);
    const stats = await lstat(full);
    const mode = (stats.mode & 0o7777).toString(8);
    const mtime = Math.floor(stats.mtimeMs / 1000);
    if (stats.isSymbolicLink()) lines.push(`${rel} symlink -> ${await readlink(full)}`);
    else if (stats.isDirectory()) lines.push(`${rel} dir ${mode} ${mtime}`);
    else if (stats.isFile()) {
      const hash = createHash('sha256')
        .update(await readFile(full))
        .digest('hex');
      lines.push(`${rel} file ${mode} ${mtime} ${stats.size} ${hash}`);
    } else lines.push(`${rel} special`);
  }
  return lines;
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => undefined,
    (err: unknown) => err,
  );
}

/** A gzipped tar of `entries`, built by hand (so it can hold anything). */
async function tarGz(entries: Array<{ header: Headers; body?: string }>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (chunk: Buffer) => chunks.push(chunk));
  const ended = new Promise((resolve) => pack.on('end', resolve));
  for (const { header, body } of entries) {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ mtime: PAST, ...header }, body ?? '', (err) => (err ? reject(err) : resolve())),
    );
  }
  pack.finalize();
  await ended;
  return gzipSync(Buffer.concat(chunks));
}

describe('snapshotWorkspace and restoreWorkspace', () => {
  it('round-trip a workspace: files, modes, mtimes, symlinks as links, empty directories', async () => {
    const source = path.join(base, 'source');
    await mkdir(source);
    await makeWorkspace(source);
    const info = await snapshotWorkspace(source, blob, 'ws/s1/snapshot.tar.gz', {
      maxBytes: 1 << 20,
      tmpDir,
    });
    const expected = (await describeTree(source)).filter((line) => !line.startsWith('a-fifo'));
    const files = expected.filter((line) => / file /.test(line));
    expect(info.files).toBe(files.length);
    expect(info.bytes).toBe(files.reduce((sum, line) => sum + Number(line.split(' ')[4]), 0));
    expect(info.storedBytes).toBe((await blob.getBuffer('ws/s1/snapshot.tar.gz'))!.length);
    expect(await readdir(tmpDir)).toEqual([]);

    // Into a workspace that holds other things, which go; the workspace keeps its own mode.
    const target = path.join(base, 'target');
    await mkdir(path.join(target, 'old-dir'), { recursive: true });
    await writeFile(path.join(target, 'old-dir', 'old.txt'), 'old');
    await writeFile(path.join(target, 'CLAUDE.md'), 'stale');
    await chmod(target, 0o750);
    expect(await restoreWorkspace(target, blob, 'ws/s1/snapshot.tar.gz', { tmpDir })).toBe(true);
    expect(await describeTree(target)).toEqual(expected);
    expect(expected.join('\n')).toMatch(/^link-to-dir symlink -> src\/nested$/m);
    expect(expected.join('\n')).toMatch(/^empty dir 755 \d+$/m);
    expect(expected.join('\n')).toMatch(/^bin\/run\.sh file 755 /m);
    expect(expected.join('\n')).toMatch(/^readonly\.txt file 444 /m);
    expect(expected.join('\n')).toMatch(/^private dir 700 /m);
    expect(expected.join('\n')).toContain(`${LONG_DIR}/${LONG_FILE} file`);
    expect(expected.join('\n')).toContain('ünïcødé/файл.txt file');
    // Every mtime was kept, to the second (tar's precision).
    const seconds = String(Math.floor(PAST.getTime() / 1000));
    for (const line of expected) {
      if (!line.includes(' symlink ')) expect(line.split(' ')[3], line).toBe(seconds);
    }
    expect((await stat(target)).mode & 0o777).toBe(0o750);
    // Nothing left beside the workspace or in the temp dir.
    expect((await readdir(base)).sort()).toEqual(['blobs', 'source', 'target', 'tmp']);
    expect(await readdir(tmpDir)).toEqual([]);

    // Into a directory that does not exist yet.
    const fresh = path.join(base, 'new', 'deeper', 'ws');
    expect(await restoreWorkspace(fresh, blob, 'ws/s1/snapshot.tar.gz', { tmpDir })).toBe(true);
    expect(await describeTree(fresh)).toEqual(expected);
  });

  it('writes archives that tar reads, and restores archives tar wrote', async () => {
    const source = path.join(base, 'source');
    await mkdir(source);
    await makeWorkspace(source);
    await snapshotWorkspace(source, blob, 'snap', { maxBytes: 1 << 20, tmpDir });
    const listed = execFileSync('tar', ['-tzf', path.join(base, 'blobs', 'snap')], { encoding: 'utf8' });
    expect(listed).toContain(`${LONG_DIR}/${LONG_FILE}\n`);
    expect(listed).toContain('CLAUDE.md\n');

    // GNU tar's own format: `./` names, GNU long-name records.
    await rm(path.join(source, 'a-fifo'));
    const archive = path.join(base, 'by-tar.tar.gz');
    execFileSync('tar', ['--format=gnu', '-czf', archive, '-C', source, '.']);
    await blob.putFile('by-tar', archive);
    const target = path.join(base, 'target');
    expect(await restoreWorkspace(target, blob, 'by-tar', { tmpDir })).toBe(true);
    expect(await describeTree(target)).toEqual(await describeTree(source));
  });

  it('returns false and changes nothing when there is no snapshot', async () => {
    const target = path.join(base, 'target');
    await mkdir(target);
    await writeFile(path.join(target, 'keep.txt'), 'keep');
    expect(await restoreWorkspace(target, blob, 'no/such/snapshot', { tmpDir })).toBe(false);
    expect(await readdir(target)).toEqual(['keep.txt']);
    expect(await readdir(tmpDir)).toEqual([]);
    expect(await restoreWorkspace(path.join(base, 'absent'), blob, 'no/such/snapshot', { tmpDir })).toBe(
      false,
    );
    expect((await readdir(base)).sort()).toEqual(['target', 'tmp']);
  });

  it('refuses a workspace over the limit before uploading anything, naming its size and the limit', async () => {
    const source = path.join(base, 'source');
    await mkdir(path.join(source, 'sub'), { recursive: true });
    await writeFile(path.join(source, 'a.bin'), randomBytes(600));
    await writeFile(path.join(source, 'sub', 'b.bin'), randomBytes(400));
    const err = await errorOf(snapshotWorkspace(source, blob, 'big', { maxBytes: 999, tmpDir }));
    expect(isBerthError(err, 'snapshot_too_large'), String(err)).toBe(true);
    expect((err as { status: number }).status).toBe(413);
    expect(String(err)).toContain('1000 bytes');
    expect(String(err)).toContain('999 bytes');
    expect(await blob.getBuffer('big')).toBeUndefined();
    expect(await readdir(base)).toEqual(['source']);

    // At the limit exactly, it is taken.
    const info = await snapshotWorkspace(source, blob, 'big', { maxBytes: 1000, tmpDir });
    expect(info).toMatchObject({ bytes: 1000, files: 2 });
  });

  it('refuses to restore more than maxBytes, leaving the workspace as it was', async () => {
    const source = path.join(base, 'source');
    await mkdir(source);
    await writeFile(path.join(source, 'a.bin'), randomBytes(1000));
    await snapshotWorkspace(source, blob, 'snap', { maxBytes: 1000, tmpDir });
    const target = path.join(base, 'target');
    await mkdir(target);
    await writeFile(path.join(target, 'keep.txt'), 'keep');
    const err = await errorOf(restoreWorkspace(target, blob, 'snap', { tmpDir, maxBytes: 999 }));
    expect(isBerthError(err, 'snapshot_too_large'), String(err)).toBe(true);
    expect(await readdir(target)).toEqual(['keep.txt']);
    expect((await readdir(base)).sort()).toEqual(['blobs', 'source', 'target', 'tmp']);
  });

  it('refuses an invalid key before doing anything', async () => {
    const source = path.join(base, 'source');
    await mkdir(source);
    for (const call of [
      () => snapshotWorkspace(source, blob, '../escape', { maxBytes: 1000, tmpDir }),
      () => restoreWorkspace(source, blob, '/abs', { tmpDir }),
    ]) {
      expect(isBerthError(await errorOf(call()), 'invalid_request')).toBe(true);
    }
    expect((await readdir(base)).sort()).toEqual(['source']);
  });
});

describe('restoreWorkspace on a hostile archive', () => {
  /**
   * Restores `entries` into a workspace holding `keep.txt`, beside a directory `outside` holding
   * `sentinel`; expects `snapshot_invalid` matching `why`, and everything as it was.
   */
  async function expectRefused(
    entries: Array<{ header: Headers; body?: string }>,
    why: RegExp,
  ): Promise<void> {
    const outside = path.join(base, 'outside');
    const target = path.join(base, 'ws');
    await mkdir(outside);
    await writeFile(path.join(outside, 'sentinel'), 'sentinel');
    await mkdir(target);
    await writeFile(path.join(target, 'keep.txt'), 'keep');
    await blob.putBuffer('evil', await tarGz(entries));
    const before = await describeTree(base);
    const err = await errorOf(restoreWorkspace(target, blob, 'evil', { tmpDir }));
    expect(isBerthError(err, 'snapshot_invalid'), String(err)).toBe(true);
    expect(String(err)).toMatch(why);
    expect(String(err)).toContain('nothing was restored');
    await rm(tmpDir, { recursive: true });
    expect(await describeTree(base)).toEqual(before);
  }

  const harmless = { header: { name: 'fine.txt' }, body: 'fine' };

  it('refuses a .. part', async () => {
    await expectRefused(
      [harmless, { header: { name: '../escaped.txt' }, body: 'x' }],
      /"\.\.\/escaped\.txt" has a \.\. part/,
    );
    await rm(base, { recursive: true });
    await mkdir(base);
    await expectRefused([{ header: { name: 'a/../../escaped.txt' }, body: 'x' }], /has a \.\. part/);
  });

  it('refuses an absolute name', async () => {
    await expectRefused(
      [harmless, { header: { name: path.join(base, 'outside', 'abs.txt') }, body: 'x' }],
      /has an absolute name/,
    );
  });

  it('refuses an entry under a symlink, wherever the link points', async () => {
    await expectRefused(
      [
        { header: { name: 'link', type: 'symlink', linkname: path.join(base, 'outside') } },
        { header: { name: 'link/evil.txt' }, body: 'x' },
      ],
      /"link\/evil\.txt" is under a symlink/,
    );
    await rm(base, { recursive: true });
    await mkdir(base);
    await expectRefused(
      [
        { header: { name: 'up', type: 'symlink', linkname: '..' } },
        { header: { name: 'up/outside/', type: 'directory' } },
      ],
      /is under a symlink/,
    );
  });

  it('refuses a second entry on a symlink, so that nothing is written through it', async () => {
    await expectRefused(
      [
        { header: { name: 'link', type: 'symlink', linkname: path.join(base, 'outside', 'sentinel') } },
        { header: { name: 'link' }, body: 'overwritten' },
      ],
      /"link" is in the archive twice/,
    );
    await rm(base, { recursive: true });
    await mkdir(base);
    await expectRefused(
      [
        { header: { name: 'link', type: 'symlink', linkname: path.join(base, 'outside') } },
        { header: { name: 'link/', type: 'directory' } },
      ],
      /"link\/" is under a symlink, or is a directory where a file is|is under a symlink/,
    );
  });

  it('refuses hard links, devices and FIFOs', async () => {
    await expectRefused(
      [
        harmless,
        { header: { name: 'hard', type: 'link', linkname: path.join(base, 'outside', 'sentinel') } },
      ],
      /"hard" is a hard link/,
    );
    for (const type of ['character-device', 'block-device', 'fifo'] as const) {
      await rm(base, { recursive: true });
      await mkdir(base);
      await expectRefused(
        [{ header: { name: 'dev', type, devmajor: 1, devminor: 3 } }],
        new RegExp(`is a ${type} entry`),
      );
    }
  });

  it('refuses what is not a gzipped tar', async () => {
    const source = path.join(base, 'source');
    await mkdir(source);
    await writeFile(path.join(source, 'a.txt'), randomBytes(5000));
    await snapshotWorkspace(source, blob, 'good', { maxBytes: 10_000, tmpDir });
    const good = (await blob.getBuffer('good'))!;
    const target = path.join(base, 'ws');
    await mkdir(target);
    await writeFile(path.join(target, 'keep.txt'), 'keep');
    for (const data of [
      Buffer.from('not gzip at all'),
      gzipSync(randomBytes(2048)),
      good.subarray(0, Math.floor(good.length / 2)),
    ]) {
      await blob.putBuffer('bad', data);
      const err = await errorOf(restoreWorkspace(target, blob, 'bad', { tmpDir }));
      expect(isBerthError(err, 'snapshot_invalid'), String(err)).toBe(true);
      expect(String(err)).toContain('snapshot bad in directory');
      expect(await readdir(target)).toEqual(['keep.txt']);
      expect((await readdir(base)).sort()).toEqual(['blobs', 'source', 'tmp', 'ws']);
    }
  });
});
