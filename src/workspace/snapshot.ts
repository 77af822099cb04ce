/**
 * Workspace snapshots: a session's working directory packed into one gzipped tar in a {@link BlobStore},
 * and unpacked into a directory on any host that can read the store.
 *
 * The archive is ustar (with PAX records for names over 100 bytes or not ASCII): every directory
 * (`name/`), regular file and symlink under the workspace, depth first in name order, with no entry for
 * the workspace itself. It keeps permission bits and mtimes (whole seconds, tar's precision), not owners:
 * a restore makes everything owned by the user running Berth. Sockets, FIFOs and devices are left out; a
 * file hard-linked under two names is stored twice. Everything streams: the workspace through gzip into a
 * temp file, then to the store, and back the same way, so memory use does not grow with its size.
 *
 * A restore trusts nothing in the archive, which may come from another host or a tampered bucket: see
 * {@link restoreWorkspace}.
 */
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import type { Stats } from 'node:fs';
import {
  chmod,
  lstat,
  lutimes,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readlink,
  rename,
  rm,
  stat,
  symlink,
  utimes,
} from 'node:fs/promises';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';
import tar from 'tar-stream';
import type { Headers, Pack } from 'tar-stream';
import { BerthError, describeError } from '../errors.js';
import type { BlobStore } from './blob-store.js';
import { validateBlobKey } from './blob-store.js';

export interface SnapshotOptions {
  /** The largest workspace snapshotted, in bytes of regular files (uncompressed). */
  maxBytes: number;
  /** Where the archive is built before it is uploaded; created if missing. */
  tmpDir: string;
}

export interface SnapshotInfo {
  /** The total size of the regular files, uncompressed. */
  bytes: number;
  /** How many regular files the snapshot holds. */
  files: number;
  /** The size of the stored archive. */
  storedBytes: number;
}

export interface RestoreOptions {
  /** Where the archive is downloaded before it is unpacked; created if missing. */
  tmpDir: string;
  /**
   * The most bytes of regular files a restore writes; an archive holding more fails with
   * `snapshot_too_large` (a guard against a small archive that unpacks to fill the disk).
   * @default no limit
   */
  maxBytes?: number;
}

/** One thing under the workspace, as the walk found it. `name` is relative, `/`-separated. */
type Entry =
  | { type: 'directory'; name: string; stats: Stats }
  | { type: 'file'; name: string; stats: Stats }
  | { type: 'symlink'; name: string; stats: Stats; target: string };

/** The largest size a ustar header holds (11 octal digits); a bigger file needs a PAX `size` record. */
const USTAR_MAX_SIZE = 0o77777777777;

/**
 * Packs `dir` (files, directories, symlinks as links; no special files) into a gzipped tar and puts it at
 * `key`. Throws `snapshot_too_large` naming the size and the limit when the files add up to more than
 * `maxBytes`, before anything is uploaded. The temp archive is removed whatever happens.
 */
export async function snapshotWorkspace(
  dir: string,
  blob: BlobStore,
  key: string,
  options: SnapshotOptions,
): Promise<SnapshotInfo> {
  validateBlobKey(key);
  const root = path.resolve(dir);
  const entries = await walk(root);
  let bytes = 0;
  let files = 0;
  for (const entry of entries) {
    if (entry.type !== 'file') continue;
    bytes += entry.stats.size;
    files += 1;
  }
  if (bytes > options.maxBytes) {
    throw new BerthError(
      'snapshot_too_large',
      `workspace ${root} holds ${bytes} bytes in ${files} files, over the snapshot limit of ${options.maxBytes} bytes`,
    );
  }
  await mkdir(options.tmpDir, { recursive: true });
  const archive = path.join(options.tmpDir, `snapshot-${randomBytes(8).toString('hex')}.tar.gz`);
  try {
    await writeArchive(root, entries, archive);
    const storedBytes = (await stat(archive)).size;
    await blob.putFile(key, archive);
    return { bytes, files, storedBytes };
  } finally {
    await rm(archive, { force: true });
  }
}

/**
 * Replaces the contents of `dir` with the snapshot at `key`, or returns false (changing nothing) when
 * there is none. `dir` is created if missing and keeps its own permissions.
 *
 * The archive is unpacked into a fresh sibling directory, which then takes `dir`'s place (two renames), so
 * a failure leaves `dir` as it was. Nothing is written outside that directory: entries with an absolute
 * name, a `..` part, or a name under a symlink or a file are refused, as are hard links, devices, FIFOs
 * and any other type; symlinks are created as links, and never followed while unpacking (files are
 * created with O_EXCL | O_NOFOLLOW in directories this function made). A refused entry fails the restore
 * with `snapshot_invalid`, as does an archive that is not a gzipped tar. setuid, setgid and sticky bits
 * are dropped.
 */
export async function restoreWorkspace(
  dir: string,
  blob: BlobStore,
  key: string,
  options: RestoreOptions,
): Promise<boolean> {
  validateBlobKey(key);
  const target = path.resolve(dir);
  const existing = await lstatIfAny(target);
  if (existing && !existing.isDirectory()) {
    throw new BerthError('internal', `cannot restore a workspace into ${target}: not a directory`);
  }
  await mkdir(options.tmpDir, { recursive: true });
  const archive = path.join(options.tmpDir, `restore-${randomBytes(8).toString('hex')}.tar.gz`);
  try {
    if (!(await blob.getToFile(key, archive))) return false;
    const parent = path.dirname(target);
    await mkdir(parent, { recursive: true });
    const staging = await mkdtemp(path.join(parent, `.${path.basename(target)}.restore-`));
    try {
      await unpack(archive, staging, `snapshot ${key} in ${blob.description}`, options.maxBytes);
      await chmod(staging, existing ? existing.mode & 0o7777 : 0o755);
      await swap(target, staging, existing !== undefined);
    } catch (err) {
      // The failure that matters is `err`; a staging directory left behind is only garbage.
      await removeTree(staging).catch(() => undefined);
      throw err;
    }
    return true;
  } finally {
    await rm(archive, { force: true });
  }
}

/** Every directory, regular file and symlink under `root`, depth first in name order. */
async function walk(root: string): Promise<Entry[]> {
  const rootStats = await stat(root);
  if (!rootStats.isDirectory()) {
    throw new BerthError('internal', `cannot snapshot the workspace ${root}: not a directory`);
  }
  const entries: Entry[] = [];
  const visit = async (rel: string): Promise<void> => {
    const names = await readdir(path.join(root, rel), { encoding: 'buffer' });
    const decoded = names
      .map((raw) => raw.toString('utf8'))
      // A name that is not valid UTF-8 cannot be named in the archive (or found again by its decoding).
      .filter((name, i) => Buffer.from(name, 'utf8').equals(names[i]!))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (const name of decoded) {
      const child = rel === '' ? name : `${rel}/${name}`;
      const full = path.join(root, child);
      let stats: Stats;
      try {
        stats = await lstat(full);
      } catch (err) {
        // Removed since the listing: it is not part of the workspace any more.
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      if (stats.isDirectory()) {
        entries.push({ type: 'directory', name: child, stats });
        await visit(child);
      } else if (stats.isFile()) {
        entries.push({ type: 'file', name: child, stats });
      } else if (stats.isSymbolicLink()) {
        entries.push({ type: 'symlink', name: child, stats, target: await readlink(full) });
      }
    }
  };
  await visit('');
  return entries;
}

/** Writes `entries` of `root` as a gzipped tar to the new file `archive`. */
async function writeArchive(root: string, entries: readonly Entry[], archive: string): Promise<void> {
  const pack = tar.pack();
  // tar-stream emits its error again when the pipeline destroys it; this keeps that from being uncaught.
  pack.on('error', () => undefined);
  const producing = (async () => {
    try {
      for (const entry of entries) await addEntry(pack, root, entry);
      pack.finalize();
    } catch (err) {
      pack.destroy(err as Error);
      throw err;
    }
  })();
  // Level 1: a snapshot sits between a turn and a suspension, so speed matters more than the last bytes.
  const writing = pipeline(pack, createGzip({ level: 1 }), createWriteStream(archive, { flags: 'wx' }));
  // Whichever fails first: a destroyed pack may never call back an entry the producer waits on.
  await Promise.all([producing, writing]);
}

async function addEntry(pack: Pack, root: string, entry: Entry): Promise<void> {
  const header: Headers = {
    name: entry.type === 'directory' ? `${entry.name}/` : entry.name,
    type: entry.type,
    mode: entry.stats.mode & 0o7777,
    mtime: entry.stats.mtime,
  };
  if (entry.type === 'symlink') {
    await new Promise<void>((resolve, reject) =>
      pack.entry({ ...header, linkname: entry.target }, (err) => (err ? reject(err) : resolve())),
    );
    return;
  }
  if (entry.type === 'directory' || entry.stats.size === 0) {
    await new Promise<void>((resolve, reject) =>
      pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolve())),
    );
    return;
  }
  const size = entry.stats.size;
  const file = path.join(root, entry.name);
  const withSize =
    size > USTAR_MAX_SIZE ? { ...header, size, pax: { size: String(size) } } : { ...header, size };
  await new Promise<void>((resolve, reject) => {
    // Exactly the size the walk counted: a file that grew meanwhile is cut there.
    const source = createReadStream(file, { start: 0, end: size - 1 });
    const sink = pack.entry(withSize, (err) => {
      if (!err) return resolve();
      source.destroy();
      reject(
        source.bytesRead < size
          ? new BerthError('internal', `workspace file ${file} shrank while it was snapshotted`, {
              cause: err,
            })
          : err,
      );
    });
    source.once('error', reject);
    // Not stream.pipeline: it destroys a tar-stream entry stream it has not seen end, and with it the pack.
    source.pipe(sink);
  });
}

/**
 * Unpacks the gzipped tar `archive` into the empty directory `root` (see {@link restoreWorkspace} for
 * what is refused). Directories are made 0700 while it runs, so that files can be written into them
 * whatever their own mode; their modes and mtimes are set at the end, deepest first, since writing into a
 * directory changes its mtime.
 */
async function unpack(
  archive: string,
  root: string,
  label: string,
  maxBytes: number | undefined,
): Promise<void> {
  /** Directories made so far (relative names), with the mode and mtime they end with. */
  const dirs = new Map<string, { mode: number; mtime: Date | undefined }>();
  let bytes = 0;
  const refuse = (name: string, why: string) =>
    new BerthError(
      'snapshot_invalid',
      `${label}: entry ${JSON.stringify(name)} ${why}; nothing was restored`,
    );

  /** Makes the parents of `parts` (as 0700 directories) unless they exist; refuses any that is not one. */
  const makeParents = async (name: string, parts: readonly string[]): Promise<void> => {
    for (let i = 1; i < parts.length; i++) {
      const rel = parts.slice(0, i).join('/');
      if (dirs.has(rel)) continue;
      await makeDir(name, rel);
      dirs.set(rel, { mode: 0o755, mtime: undefined });
    }
  };
  const makeDir = async (name: string, rel: string): Promise<void> => {
    try {
      await mkdir(path.join(root, rel), 0o700);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      const found = await lstat(path.join(root, rel));
      if (found.isSymbolicLink()) throw refuse(name, 'is under a symlink');
      if (!found.isDirectory()) throw refuse(name, 'is under a file, or is a directory where a file is');
    }
  };

  const restoreEntry = async (header: Headers, body: Readable): Promise<void> => {
    const name = header.name;
    if (name.includes('\0')) throw refuse(name, 'has a NUL in its name');
    if (name.startsWith('/')) throw refuse(name, 'has an absolute name');
    const parts = name.split('/').filter((part) => part !== '' && part !== '.');
    if (parts.includes('..')) throw refuse(name, 'has a .. part');
    const rel = parts.join('/');
    const full = path.join(root, rel);
    const mode = (header.mode ?? 0o644) & 0o777;
    const mtime = header.mtime ?? new Date();
    switch (header.type) {
      case 'directory': {
        body.resume();
        // `./` names the workspace itself, whose mode the restore keeps.
        if (rel === '') return;
        await makeParents(name, parts);
        await makeDir(name, rel);
        dirs.set(rel, { mode, mtime });
        return;
      }
      case 'file': {
        if (rel === '') throw refuse(name, 'names the workspace itself');
        bytes += header.size ?? 0;
        if (maxBytes !== undefined && bytes > maxBytes) {
          throw new BerthError(
            'snapshot_too_large',
            `${label} unpacks to more than the limit of ${maxBytes} bytes; nothing was restored`,
          );
        }
        await makeParents(name, parts);
        let handle;
        try {
          handle = await open(
            full,
            constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
            0o600,
          );
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw refuse(name, 'is in the archive twice');
          throw err;
        }
        try {
          // A stream on the bare fd: after `handle.createWriteStream({ autoClose: false })`, Node 20's
          // `handle.close()` waits forever for the stream to let go of the handle.
          await writeBody(body, createWriteStream('', { fd: handle.fd, autoClose: false }));
          await handle.chmod(mode);
          await handle.utimes(mtime, mtime);
        } finally {
          await handle.close();
        }
        return;
      }
      case 'symlink': {
        if (rel === '') throw refuse(name, 'names the workspace itself');
        const link = header.linkname ?? '';
        if (link === '' || link.includes('\0')) throw refuse(name, 'is a symlink to nothing');
        body.resume();
        await makeParents(name, parts);
        try {
          await symlink(link, full);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw refuse(name, 'is in the archive twice');
          throw err;
        }
        await lutimes(full, mtime, mtime);
        return;
      }
      case 'link':
        throw refuse(name, 'is a hard link (only files, directories and symlinks are restored)');
      default:
        throw refuse(
          name,
          `is a ${header.type ?? 'unknown'} entry (only files, directories and symlinks are restored)`,
        );
    }
  };

  const extract = tar.extract();
  // tar-stream emits its error again when the pipeline destroys it; this keeps that from being uncaught.
  extract.on('error', () => undefined);
  /** The first entry that failed: tar-stream may report only that it was destroyed. */
  let failure: unknown;
  extract.on('entry', (header: Headers, body: Readable, next: (err?: unknown) => void) => {
    restoreEntry(header, body).then(
      () => next(),
      (err: unknown) => {
        failure ??= err;
        body.resume();
        next(err);
      },
    );
  });
  try {
    await pipeline(createReadStream(archive), createGunzip(), extract);
  } catch (caught) {
    const err = failure ?? caught;
    if (err instanceof BerthError) throw err;
    // A local filesystem failure (a full disk, say) is not the archive's fault.
    if ((err as NodeJS.ErrnoException | null)?.syscall !== undefined) throw err;
    throw new BerthError(
      'snapshot_invalid',
      `${label} is not a readable gzipped tar: ${describeError(err)}`,
      {
        cause: err,
      },
    );
  }

  const deepestFirst = [...dirs].sort(([a], [b]) => b.split('/').length - a.split('/').length);
  for (const [rel, { mode, mtime }] of deepestFirst) {
    const full = path.join(root, rel);
    await chmod(full, mode);
    if (mtime) await utimes(full, mtime, mtime);
  }
}

/**
 * Pipes a tar-stream entry body into `out`, resolving once `out` has flushed. Not `stream.pipeline`: it
 * destroys a source it has not seen end, and destroying an entry body destroys the whole extract. The
 * body only emits `close` when the extract is destroyed mid-entry (the archive was cut short, say).
 */
function writeBody(body: Readable, out: Writable): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    out.once('error', reject);
    out.once('finish', resolve);
    body.once('error', reject);
    body.once('close', () => reject(new Error('the archive ended inside an entry')));
    body.pipe(out);
  });
}

/** Puts the directory `staging` where `target` is, removing what was there. */
async function swap(target: string, staging: string, targetExists: boolean): Promise<void> {
  if (!targetExists) {
    await rename(staging, target);
    return;
  }
  const old = `${staging}.old`;
  await rename(target, old);
  try {
    await rename(staging, target);
  } catch (err) {
    await rename(old, target);
    throw err;
  }
  // The restore is complete; a leftover `.NAME.restore-*.old` is garbage for an operator to see, not a failure.
  await removeTree(old).catch(() => undefined);
}

async function lstatIfAny(file: string): Promise<Stats | undefined> {
  try {
    return await lstat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/**
 * Removes a directory tree, including directories without write permission (a restored workspace may
 * have them, and without root `rm -r` cannot empty them).
 */
async function removeTree(dir: string): Promise<void> {
  try {
    await rm(dir, { recursive: true, force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await makeWritable(dir);
    await rm(dir, { recursive: true, force: true });
  }
}

async function makeWritable(dir: string): Promise<void> {
  const stats = await lstatIfAny(dir);
  if (!stats?.isDirectory()) return;
  await chmod(dir, 0o700);
  for (const name of await readdir(dir)) await makeWritable(path.join(dir, name));
}
