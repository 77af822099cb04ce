/**
 * A task's artifacts: the regular files in its working directory that it created or changed (an input
 * file whose bytes are unchanged is not one). Symlinks are never followed and never returned; sockets,
 * FIFOs and devices are skipped. Runs after the task's whole process tree is gone, so nothing moves
 * underneath; even so a file is opened with `O_NOFOLLOW` and must still be the inode the walk saw.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { lstat, open, readdir, type FileHandle } from 'node:fs/promises';
import path from 'node:path';

export interface ArtifactLimits {
  /** @default 1000 */
  maxArtifacts: number;
  /** Bytes of all artifacts together. @default 256 MiB */
  maxTotalBytes: number;
  /** Directory entries the walk looks at before it gives up (a task that made millions of files). @default 100_000 */
  maxEntries: number;
}

export const DEFAULT_ARTIFACT_LIMITS: ArtifactLimits = Object.freeze({
  maxArtifacts: 1000,
  maxTotalBytes: 256 * 1024 * 1024,
  maxEntries: 100_000,
});

/** One artifact found on disk. */
export interface FoundArtifact {
  /** Relative to the working directory, `/`-separated. */
  path: string;
  bytes: number;
  sha256: string;
  /** Where it is, and which inode it was when found. */
  file: string;
  dev: number;
  ino: number;
}

export interface CollectedArtifacts {
  /** Empty when a limit was exceeded. */
  artifacts: FoundArtifact[];
  /** Why nothing is returned: the limit that was exceeded, for the task's error. */
  overLimit: string | undefined;
  /** Symlinks seen (and left alone). */
  symlinks: number;
}

interface RegularFile {
  path: string;
  file: string;
  bytes: number;
  dev: number;
  ino: number;
}

/**
 * Walks `cwd` and returns what the task created or changed; `inputs` maps each input path to the
 * sha256 of the bytes written there.
 */
export async function collectArtifacts(
  cwd: string,
  inputs: ReadonlyMap<string, string>,
  limits: ArtifactLimits = DEFAULT_ARTIFACT_LIMITS,
): Promise<CollectedArtifacts> {
  const files: RegularFile[] = [];
  let symlinks = 0;
  let entries = 0;
  const over = (why: string): CollectedArtifacts => ({ artifacts: [], overLimit: why, symlinks });
  const stack: string[] = [''];
  while (stack.length > 0) {
    const rel = stack.pop()!;
    let names: string[];
    try {
      names = await readdir(path.join(cwd, rel));
    } catch {
      continue; // removed, or not readable: nothing to return from it
    }
    names.sort();
    for (const name of names) {
      entries += 1;
      if (entries > limits.maxEntries) {
        return over(
          `the task's directory holds over ${limits.maxEntries} entries; artifacts were not collected`,
        );
      }
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const file = path.join(cwd, childRel);
      const stat = await lstat(file).catch(() => undefined);
      if (!stat) continue;
      if (stat.isSymbolicLink()) symlinks += 1;
      else if (stat.isDirectory()) stack.push(childRel);
      else if (stat.isFile())
        files.push({ path: childRel, file, bytes: stat.size, dev: stat.dev, ino: stat.ino });
    }
  }
  files.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));

  const artifacts: FoundArtifact[] = [];
  let total = 0;
  for (const candidate of files) {
    const handle = await openFound(candidate);
    if (!handle) continue;
    let sha256: string;
    try {
      sha256 = await hashHandle(handle);
    } finally {
      await handle.close();
    }
    if (inputs.get(candidate.path) === sha256) continue;
    total += candidate.bytes;
    if (artifacts.length + 1 > limits.maxArtifacts) {
      return over(
        `the task created or changed over ${limits.maxArtifacts} files, the most a task may return`,
      );
    }
    if (total > limits.maxTotalBytes) {
      return over(
        `the task's created or changed files hold over ${limits.maxTotalBytes} bytes, the most a task may return`,
      );
    }
    artifacts.push({ ...candidate, sha256 });
  }
  return { artifacts, overLimit: undefined, symlinks };
}

/**
 * Opens an artifact for reading without following a symlink; undefined when it is no longer the regular
 * file the walk found. The caller closes the handle.
 */
export async function openFound(
  found: Pick<FoundArtifact, 'file' | 'dev' | 'ino'>,
): Promise<FileHandle | undefined> {
  let handle: FileHandle;
  try {
    handle = await open(found.file, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return undefined;
  }
  const stat = await handle.stat();
  if (!stat.isFile() || stat.dev !== found.dev || stat.ino !== found.ino) {
    await handle.close();
    return undefined;
  }
  return handle;
}

async function hashHandle(handle: FileHandle): Promise<string> {
  const hash = createHash('sha256');
  // `start: 0` reads from the beginning whatever the handle's position; autoClose off: the caller closes.
  for await (const chunk of createReadStream('', { fd: handle, start: 0, autoClose: false })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}
