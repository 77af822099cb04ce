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
import { constants, createWriteStream } from 'node:fs';
import { access, copyFile, mkdir, open, readFile, rename, rm, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { BerthError, describeError } from '../errors.js';
import type { BlobStore } from './blob-store.js';
import { closedStoreError, tempBeside, validateBlobKey } from './blob-store.js';

export interface DirBlobStoreOptions {
  /** The directory blobs live under; created on first write. */
  root: string;
}

export class DirBlobStore implements BlobStore {
  readonly shared = false;
  readonly description: string;
  readonly root: string;
  private closing: Promise<void> | undefined;

  constructor(options: DirBlobStoreOptions) {
    this.root = path.resolve(options.root);
    this.description = `directory ${this.root}`;
  }

  async putFile(key: string, file: string): Promise<void> {
    const target = this.pathOf(key);
    // Outside `call`: a missing source is the caller's fault, not the store's.
    await access(file, constants.R_OK);
    await this.call('put', key, () => this.replace(target, (temp) => copyFile(file, temp)));
  }

  async getToFile(key: string, file: string): Promise<boolean> {
    const source = this.pathOf(key);
    return this.call('get', key, async () => {
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
        await pipeline(handle.createReadStream(), createWriteStream(temp, { flags: 'wx' }));
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

  async putBuffer(key: string, data: Buffer): Promise<void> {
    const target = this.pathOf(key);
    await this.call('put', key, () => this.replace(target, (temp) => writeFile(temp, data)));
  }

  async getBuffer(key: string): Promise<Buffer | undefined> {
    const file = this.pathOf(key);
    return this.call('get', key, async () => {
      try {
        return await readFile(file);
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
    });
  }

  async openRead(key: string): Promise<{ stream: Readable; size: number } | undefined> {
    const file = this.pathOf(key);
    return this.call('get', key, async () => {
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

  async delete(key: string): Promise<void> {
    const file = this.pathOf(key);
    await this.call('delete', key, async () => {
      try {
        await unlink(file);
      } catch (err) {
        if (!isMissing(err)) throw err;
      }
    });
  }

  async deletePrefix(prefix: string): Promise<void> {
    validateBlobKey(prefix, 'blob key prefix');
    this.checkOpen();
    const dir = path.join(this.root, ...prefix.split('/').map((part) => `${part}~`));
    await this.call('delete', `${prefix}/`, () => rm(dir, { recursive: true, force: true }));
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

  /** Writes a temp file beside `target` with `write`, then renames it over `target`. */
  private async replace(target: string, write: (temp: string) => Promise<void>): Promise<void> {
    await mkdir(path.dirname(target), { recursive: true });
    const temp = path.join(path.dirname(target), `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      await write(temp);
      await rename(temp, target);
    } catch (err) {
      await rm(temp, { force: true });
      throw err;
    }
  }

  /** Runs `work`, reporting a filesystem failure as `store_unavailable` naming the action and key. */
  private async call<T>(action: string, key: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      if (err instanceof BerthError) throw err;
      throw new BerthError(
        'store_unavailable',
        `blob ${action} ${key} in ${this.description} failed: ${describeError(err)}`,
        { cause: err },
      );
    }
  }
}

/** True for the errors a read of an absent blob fails with. */
function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  // ENOTDIR: only when something other than this store put a file where a directory belongs.
  return code === 'ENOENT' || code === 'ENOTDIR';
}
