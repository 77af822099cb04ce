/**
 * A {@link BlobStore} in a local directory: for one host, or hosts that share nothing.
 *
 * Layout under the root: every key component but the last is a directory named after it with `~` appended,
 * and the blob is a file named after the last component:
 *
 *   workspaces/acme/s1/snapshot.tar.gz   ->   ROOT/workspaces~/acme~/s1~/snapshot.tar.gz
 *
 * `~` is not a key character, so a blob file and a directory never share a name: `a` and `a/b` coexist
 * (`ROOT/a` and `ROOT/a~/b`), as they do on S3. Writes go to a temp file `.tmp-<random>` in the blob's
 * directory, then a rename replaces the blob, so a reader sees the old or the new blob, never part of one.
 * A temp file left by a crash starts with `.`, which no key does; `deletePrefix` removes it with the rest.
 * Empty directories are left behind by `delete` (they cost nothing and keep concurrent puts simple).
 */
import { randomBytes } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { access, mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, describeError } from '../errors.js';
import { Deadline, DEFAULT_STORE_TIMEOUT_MS } from '../stores/deadline.js';
import type { BlobCallOptions, BlobStore } from './blob-store.js';
import { closedStoreError, progress, tempBeside, validateBlobKey } from './blob-store.js';

export interface DirBlobStoreOptions {
  /** The directory blobs live under; created on first write. */
  root: string;
  /**
   * How long a call may wait on the filesystem (for a transfer: how long it may make no progress) before
   * it fails with `store_unavailable`: a stalled disk or network mount counts as a failure.
   * @default 10000
   */
  timeoutMs?: number;
}

export class DirBlobStore implements BlobStore {
  readonly shared = false;
  readonly description: string;
  readonly root: string;
  private readonly timeoutMs: number;
  private closing: Promise<void> | undefined;

  constructor(options: DirBlobStoreOptions) {
    this.root = path.resolve(options.root);
    this.description = `directory ${this.root}`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  }

  async putFile(key: string, file: string, options?: BlobCallOptions): Promise<void> {
    const target = this.pathOf(key);
    // Outside `call`: a missing source is the caller's fault, not the store's.
    await access(file, constants.R_OK);
    await this.call('put', key, options, (deadline) =>
      this.replace(target, deadline.signal, (temp) =>
        pipeline(createReadStream(file), progress(deadline), createWriteStream(temp, { flags: 'wx' }), {
          signal: deadline.signal,
        }),
      ),
    );
  }

  async getToFile(key: string, file: string, options?: BlobCallOptions): Promise<boolean> {
    const source = this.pathOf(key);
    return this.call('get', key, options, async (deadline) => {
      let handle;
      try {
        // One open file: a put replacing the blob meanwhile does not mix two versions.
        handle = await open(source, 'r');
      } catch (err) {
        if (isMissing(err)) return false;
        throw err;
      }
      const temp = tempBeside(file);
      try {
        await pipeline(
          handle.createReadStream(),
          progress(deadline),
          createWriteStream(temp, { flags: 'wx' }),
          { signal: deadline.signal },
        );
        await rename(temp, file);
        return true;
      } catch (err) {
        await rm(temp, { force: true });
        throw err;
      } finally {
        // Closed by the read stream unless it failed to start.
        await handle.close().catch(() => undefined);
      }
    });
  }

  async putBuffer(key: string, data: Buffer, options?: BlobCallOptions): Promise<void> {
    const target = this.pathOf(key);
    await this.call('put', key, options, (deadline) =>
      this.replace(target, deadline.signal, (temp) => writeFile(temp, data, { signal: deadline.signal })),
    );
  }

  async getBuffer(key: string, options?: BlobCallOptions): Promise<Buffer | undefined> {
    const file = this.pathOf(key);
    return this.call('get', key, options, async (deadline) => {
      try {
        return await readFile(file, { signal: deadline.signal });
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
    });
  }

  async openRead(
    key: string,
    options?: BlobCallOptions,
  ): Promise<{ stream: Readable; size: number } | undefined> {
    const file = this.pathOf(key);
    return this.call('get', key, options, async () => {
      let handle;
      try {
        handle = await open(file, 'r');
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
      try {
        // The size of the open file, not of the path: a put may replace the path meanwhile.
        const { size } = await handle.stat();
        return { stream: handle.createReadStream(), size };
      } catch (err) {
        await handle.close();
        throw err;
      }
    });
  }

  async delete(key: string, options?: BlobCallOptions): Promise<void> {
    const file = this.pathOf(key);
    await this.call('delete', key, options, async () => {
      try {
        await unlink(file);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    });
  }

  async deletePrefix(prefix: string, options?: BlobCallOptions): Promise<void> {
    validateBlobKey(prefix, 'blob key prefix');
    this.checkOpen();
    const dir = path.join(this.root, ...prefix.split('/').map((part) => `${part}~`));
    await this.call('delete', `${prefix}/`, options, () => rm(dir, { recursive: true, force: true }));
  }

  close(): Promise<void> {
    this.closing ??= Promise.resolve();
    return this.closing;
  }

  /** The file of `key` under the root (see the layout in the header). */
  private pathOf(key: string): string {
    validateBlobKey(key);
    this.checkOpen();
    const parts = key.split('/');
    const name = parts.pop()!;
    return path.join(this.root, ...parts.map((part) => `${part}~`), name);
  }

  private checkOpen(): void {
    if (this.closing) throw closedStoreError(this.description);
  }

  /**
   * Writes a temp file beside `target` with `write`, then renames it over `target`, unless the call was
   * stopped meanwhile: a put that its caller has given up on must not replace the blob later.
   */
  private async replace(
    target: string,
    signal: AbortSignal,
    write: (temp: string) => Promise<void>,
  ): Promise<void> {
    await mkdir(path.dirname(target), { recursive: true });
    const temp = path.join(path.dirname(target), `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      await write(temp);
      signal.throwIfAborted();
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /**
   * Runs `work` under the call's deadline (see {@link DirBlobStoreOptions.timeoutMs}) and the caller's
   * signal, reporting a filesystem failure as `store_unavailable` naming the action and key. A stopped
   * call rejects at once; a filesystem call already running in the thread pool cannot be stopped and
   * finishes in the background (a put's temp file is then removed, never renamed).
   */
  private async call<T>(
    action: string,
    key: string,
    options: BlobCallOptions | undefined,
    work: (deadline: Deadline) => Promise<T>,
  ): Promise<T> {
    const what = `blob ${action} ${key} in ${this.description}`;
    const deadline = new Deadline(what, this.timeoutMs, options?.signal);
    try {
      return await deadline.run(() => work(deadline));
    } catch (err) {
      if (err instanceof BerthError) throw err;
      throw new BerthError('store_unavailable', `${what} failed: ${describeError(err)}`, { cause: err });
    }
  }
}

/** True for the errors a read of an absent blob fails with. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  // ENOTDIR: only when something other than this store put a file where a directory belongs.
  return code === 'ENOENT' || code === 'ENOTDIR';
}
