import { mkdtemp, readFile, readdir, rm, symlink, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { checkInputFiles, relativePathProblem, writeInputFiles } from './inputs.js';

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return isBerthError(err) ? err.code : 'not a BerthError';
  }
  return undefined;
}

describe('relativePathProblem', () => {
  it.each(['a', 'a/b.txt', 'dir/sub/file', '.hidden', 'a..b', 'ünïcode.txt', 'sp ace'])('accepts %j', (p) => {
    expect(relativePathProblem(p)).toBeUndefined();
  });

  it.each(['', '/etc/passwd', '../x', 'a/../../x', 'a/..', '.', './a', 'a//b', 'a/', 'a\\b', 'a\0b', 'a\nb'])(
    'refuses %j',
    (p) => {
      expect(relativePathProblem(p)).toEqual(expect.any(String));
    },
  );

  it('refuses overlong paths and names', () => {
    expect(relativePathProblem('a'.repeat(256))).toMatch(/255/);
    expect(relativePathProblem(Array(300).fill('abcd').join('/'))).toMatch(/1024/);
  });
});

describe('checkInputFiles', () => {
  it('decodes utf8 and base64 and hashes the bytes', () => {
    const [a, b] = checkInputFiles([
      { path: 'a.txt', content: 'hé' },
      { path: 'b.bin', content: Buffer.from([0, 255]).toString('base64'), encoding: 'base64' },
    ]);
    expect(a!.data).toEqual(Buffer.from('hé'));
    expect(b!.data).toEqual(Buffer.from([0, 255]));
    expect(a!.sha256).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses bad paths, clashes and duplicates with invalid_path', () => {
    expect(codeOf(() => checkInputFiles([{ path: '../x', content: '' }]))).toBe('invalid_path');
    expect(
      codeOf(() =>
        checkInputFiles([
          { path: 'a', content: '' },
          { path: 'a/b', content: '' },
        ]),
      ),
    ).toBe('invalid_path');
    expect(
      codeOf(() =>
        checkInputFiles([
          { path: 'a/b', content: '' },
          { path: 'a', content: '' },
        ]),
      ),
    ).toBe('invalid_path');
    expect(
      codeOf(() =>
        checkInputFiles([
          { path: 'a', content: '' },
          { path: 'a', content: '' },
        ]),
      ),
    ).toBe('invalid_path');
  });

  it('enforces the count and size limits with limit_exceeded', () => {
    const limits = { maxFiles: 2, maxFileBytes: 4, maxTotalBytes: 6 };
    const file = (p: string, content: string) => ({ path: p, content });
    expect(codeOf(() => checkInputFiles([file('a', ''), file('b', ''), file('c', '')], limits))).toBe(
      'limit_exceeded',
    );
    expect(codeOf(() => checkInputFiles([file('a', '12345')], limits))).toBe('limit_exceeded');
    expect(codeOf(() => checkInputFiles([file('a', '1234'), file('b', '123')], limits))).toBe(
      'limit_exceeded',
    );
    expect(checkInputFiles([file('a', '1234'), file('b', '12')], limits)).toHaveLength(2);
    const big = { path: 'a', content: Buffer.alloc(9).toString('base64'), encoding: 'base64' as const };
    expect(codeOf(() => checkInputFiles([big], limits))).toBe('limit_exceeded');
  });

  it('refuses content that is not strict base64', () => {
    for (const content of ['abc', 'ab!=', 'YQ', 'YQ==YQ==']) {
      expect(
        codeOf(() => checkInputFiles([{ path: 'a', content, encoding: 'base64' }])),
        content,
      ).toBe('invalid_request');
    }
  });
});

describe('writeInputFiles', () => {
  it('writes the files, making the directories on the way', async () => {
    const cwd = await mkdtemp(path.join(os.tmpdir(), 'berth-inputs-'));
    dirs.push(cwd);
    await writeInputFiles(
      cwd,
      checkInputFiles([
        { path: 'a/b/c.txt', content: 'x' },
        { path: 'd.txt', content: 'y' },
      ]),
    );
    expect(await readFile(path.join(cwd, 'a/b/c.txt'), 'utf8')).toBe('x');
    expect(await readFile(path.join(cwd, 'd.txt'), 'utf8')).toBe('y');
  });

  it('never writes through a symlink', async () => {
    const cwd = await mkdtemp(path.join(os.tmpdir(), 'berth-inputs-'));
    const outside = await mkdtemp(path.join(os.tmpdir(), 'berth-outside-'));
    dirs.push(cwd, outside);
    await symlink(outside, path.join(cwd, 'link'));
    await symlink(path.join(outside, 'target'), path.join(cwd, 'file'));
    await mkdir(path.join(cwd, 'real'));
    await expect(writeInputFiles(cwd, checkInputFiles([{ path: 'link/x', content: 'x' }]))).rejects.toThrow(
      /not a directory/,
    );
    await expect(writeInputFiles(cwd, checkInputFiles([{ path: 'file', content: 'x' }]))).rejects.toThrow();
    expect(await readdir(outside)).toEqual([]);
  });
});
