/**
 * A task's input files: checked whole before anything is written (a refused request changes nothing),
 * then written into the task's fresh working directory.
 *
 * A path is relative and stays inside the working directory: `/`-separated parts, none empty, `.` or
 * `..`, no NUL, backslash or control character; no file may sit where another needs a directory
 * (`a` and `a/b`), and no path twice. Writes never follow a symlink (the directory is fresh, and each
 * file is created with `O_EXCL | O_NOFOLLOW`).
 */
import { createHash } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, mkdir, open } from 'node:fs/promises';
import path from 'node:path';
import { BerthError } from '../errors.js';

/** A file as the client sends it. */
export interface TaskFileInput {
  path: string;
  content: string;
  /** @default 'utf8' */
  encoding?: 'utf8' | 'base64' | undefined;
}

/** A checked input file, decoded. */
export interface InputFile {
  /** The normalised relative path (`/`-separated). */
  path: string;
  data: Buffer;
  sha256: string;
}

export interface InputLimits {
  /** @default 100 */
  maxFiles: number;
  /** Decoded size of one file. @default 10 MiB */
  maxFileBytes: number;
  /** Decoded size of all files together. @default 32 MiB */
  maxTotalBytes: number;
}

export const DEFAULT_INPUT_LIMITS: InputLimits = Object.freeze({
  maxFiles: 100,
  maxFileBytes: 10 * 1024 * 1024,
  maxTotalBytes: 32 * 1024 * 1024,
});

/** The longest relative path accepted, in bytes (Linux's PATH_MAX is 4096 for the whole path). */
const MAX_PATH_BYTES = 1024;
/** The longest file name (one part), in bytes: ext4 and most filesystems stop at 255. */
const MAX_NAME_BYTES = 255;

const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/**
 * Why `raw` is not a safe relative path, or undefined when it is. Shared by input files and artifact
 * requests, so the two can never disagree about what may name a file in a task.
 */
export function relativePathProblem(raw: string): string | undefined {
  if (raw.length === 0) return 'is empty';
  if (raw.includes('\0')) return 'contains NUL';
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f]/.test(raw)) return 'contains a control character';
  if (raw.includes('\\')) return 'contains a backslash (use / between parts)';
  if (raw.startsWith('/')) return 'is absolute (paths are relative to the task directory)';
  if (Buffer.byteLength(raw) > MAX_PATH_BYTES) return `is longer than ${MAX_PATH_BYTES} bytes`;
  for (const part of raw.split('/')) {
    if (part === '') return 'has an empty part (// or a trailing /)';
    if (part === '.' || part === '..')
      return `has a ${part} part (paths cannot leave or name the task directory)`;
    if (Buffer.byteLength(part) > MAX_NAME_BYTES) return `has a part longer than ${MAX_NAME_BYTES} bytes`;
  }
  return undefined;
}

function limitError(message: string): BerthError {
  return new BerthError('limit_exceeded', message);
}

/** Checks and decodes every file; throws (`invalid_path`, `invalid_request`, `limit_exceeded`) first. */
export function checkInputFiles(
  files: readonly TaskFileInput[],
  limits: InputLimits = DEFAULT_INPUT_LIMITS,
): InputFile[] {
  if (files.length > limits.maxFiles) {
    throw limitError(`files: ${files.length} input files; at most ${limits.maxFiles} are accepted`);
  }
  const seen = new Set<string>();
  const dirs = new Set<string>();
  for (const [index, file] of files.entries()) {
    const problem = relativePathProblem(file.path);
    if (problem) {
      throw new BerthError(
        'invalid_path',
        `files.${index}.path ${JSON.stringify(file.path.slice(0, 200))} ${problem}`,
      );
    }
    if (seen.has(file.path)) {
      throw new BerthError('invalid_path', `files.${index}.path ${JSON.stringify(file.path)} is given twice`);
    }
    seen.add(file.path);
    const parts = file.path.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  for (const [index, file] of files.entries()) {
    if (dirs.has(file.path)) {
      throw new BerthError(
        'invalid_path',
        `files.${index}.path ${JSON.stringify(file.path)} is a file, but other files are inside it`,
      );
    }
  }
  let total = 0;
  return files.map((file, index) => {
    const where = `files.${index} (${JSON.stringify(file.path.slice(0, 200))})`;
    let data: Buffer;
    if (file.encoding === 'base64') {
      // Checked before decoding: Buffer.from skips what is not base64, which would corrupt the file silently.
      if (Math.floor(file.content.length / 4) * 3 > limits.maxFileBytes + 3) {
        throw limitError(`${where} is over ${limits.maxFileBytes} bytes; the most one input file may hold`);
      }
      if (!STRICT_BASE64.test(file.content)) {
        throw new BerthError('invalid_request', `${where}: content is not valid base64 (with padding)`);
      }
      data = Buffer.from(file.content, 'base64');
    } else {
      data = Buffer.from(file.content, 'utf8');
    }
    if (data.length > limits.maxFileBytes) {
      throw limitError(
        `${where} holds ${data.length} bytes; one input file may hold at most ${limits.maxFileBytes}`,
      );
    }
    total += data.length;
    if (total > limits.maxTotalBytes) {
      throw limitError(`the input files hold over ${limits.maxTotalBytes} bytes together, the limit`);
    }
    return { path: file.path, data, sha256: createHash('sha256').update(data).digest('hex') };
  });
}

/**
 * Writes checked files under `cwd`, which must exist and be fresh. Refuses (and writes nothing more) if a
 * directory on the way is a symlink or not a directory.
 */
export async function writeInputFiles(cwd: string, files: readonly InputFile[]): Promise<void> {
  for (const file of files) {
    const parts = file.path.split('/');
    let dir = cwd;
    for (const part of parts.slice(0, -1)) {
      dir = path.join(dir, part);
      await mkdir(dir).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'EEXIST') throw err;
      });
      // mkdir of an existing name succeeds for a symlink to a directory: it must not be followed.
      const stat = await lstat(dir);
      if (!stat.isDirectory()) {
        throw new BerthError(
          'invalid_path',
          `${JSON.stringify(file.path)}: ${path.relative(cwd, dir)} is not a directory`,
        );
      }
    }
    const handle = await open(
      path.join(cwd, ...parts),
      constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
      0o644,
    );
    try {
      await handle.writeFile(file.data);
    } finally {
      await handle.close();
    }
  }
}
