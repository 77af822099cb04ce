/**
 * A {@link BlobStore} on S3 or any S3-compatible server: blobs every host can read.
 *
 * A key `K` is the object `PREFIX/K` in the bucket. A file is put as one streamed PutObject with its
 * length and SHA-256 (so the file is read twice, and a blob is at most 5 GiB, S3's limit for one PUT);
 * gets stream the body and check its length. S3 replaces an object atomically, so a reader gets the old
 * or the new blob (s3rver does not: see the conformance cases). Every failure of the backend becomes
 * `BerthError('store_unavailable')` naming the operation and the object. Requests go through the shared
 * client module (`stores/s3/client.ts`), with each call's deadline and signal as the SDK's `abortSignal`.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { S3Client } from '@aws-sdk/client-s3';
import { BerthError } from '../errors.js';
import { abortError, checkAborted } from '../stores/abort.js';
import { Deadline, DEFAULT_STORE_TIMEOUT_MS } from '../stores/deadline.js';
import { normalizePrefix, S3Bucket, storeError } from '../stores/s3/client.js';
import type { ObjectStream } from '../stores/s3/client.js';
import type { BlobCallOptions, BlobStore } from './blob-store.js';
import { closedStoreError, progress, tempBeside, validateBlobKey } from './blob-store.js';

export interface S3BlobStoreOptions {
  /** A configured client; the store never destroys it. */
  client: S3Client;
  bucket: string;
  /**
   * Every key starts with it (`a/b` stores keys under `a/b/`).
   * @default '' (the bucket's root)
   */
  prefix?: string;
  /**
   * How long a call may wait on S3 (for a transfer: how long it may make no progress) before the request
   * is aborted and the call fails with `store_unavailable`.
   * @default 10000
   */
  timeoutMs?: number;
}

export class S3BlobStore implements BlobStore {
  readonly shared = true;
  readonly description: string;
  private readonly bucket: S3Bucket;
  /** `''` or `a/b/`. */
  private readonly root: string;
  private readonly timeoutMs: number;
  private closing: Promise<void> | undefined;

  constructor(options: S3BlobStoreOptions) {
    this.bucket = new S3Bucket(options.client, options.bucket);
    this.root = normalizePrefix(options.prefix);
    this.description = `s3://${options.bucket}/${this.root}`;
    this.timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  }

  async putFile(key: string, file: string, options?: BlobCallOptions): Promise<void> {
    const object = this.objectOf(key);
    const signal = options?.signal;
    const what = `s3 put s3://${this.bucket.name}/${object}`;
    checkAborted(signal, what);
    // Outside the error mapping: a missing source is the caller's fault, not the backend's.
    const { size, sha256 } = await digest(file, signal).catch((err: unknown) => {
      throw signal?.aborted ? abortError(signal, what) : err;
    });
    await this.call('put', object, options, async (deadline) => {
      // Exactly the bytes hashed, should the file grow meanwhile (a read stream cannot take `end: -1`).
      const source = size > 0 ? createReadStream(file, { start: 0, end: size - 1 }) : undefined;
      const body = source && progress(deadline);
      // A read error destroys `body` with it, which fails the request.
      if (source && body) pipeline(source, body).catch(() => undefined);
      try {
        await this.bucket.putObject(
          object,
          body ?? Buffer.alloc(0),
          { contentType: 'application/octet-stream', contentLength: size, sha256 },
          deadline.signal,
        );
      } finally {
        source?.destroy();
        body?.destroy();
      }
    });
  }

  async getToFile(key: string, file: string, options?: BlobCallOptions): Promise<boolean> {
    const object = this.objectOf(key);
    return this.call('get', object, options, async (deadline) => {
      const response = await this.bucket.getStream(object, deadline.signal);
      if (!response) return false;
      const temp = tempBeside(file);
      try {
        const out = createWriteStream(temp, { flags: 'wx' });
        await pipeline(response.body, progress(deadline), out, { signal: deadline.signal });
        if (out.bytesWritten !== response.size) throw this.shortRead(object, out.bytesWritten, response.size);
        await rename(temp, file);
        return true;
      } catch (err) {
        response.body.destroy();
        await rm(temp, { force: true });
        throw err;
      }
    });
  }

  async putBuffer(key: string, data: Buffer, options?: BlobCallOptions): Promise<void> {
    const object = this.objectOf(key);
    await this.call('put', object, options, (deadline) =>
      this.bucket.putObject(object, data, { contentType: 'application/octet-stream' }, deadline.signal),
    );
  }

  async getBuffer(key: string, options?: BlobCallOptions): Promise<Buffer | undefined> {
    const object = this.objectOf(key);
    return this.call('get', object, options, async (deadline) => {
      const response = await this.bucket.getStream(object, deadline.signal);
      if (!response) return undefined;
      const chunks: Buffer[] = [];
      for await (const chunk of response.body) {
        deadline.touch();
        chunks.push(chunk as Buffer);
      }
      const data = Buffer.concat(chunks);
      if (data.length !== response.size) throw this.shortRead(object, data.length, response.size);
      return data;
    });
  }

  async openRead(
    key: string,
    options?: BlobCallOptions,
  ): Promise<{ stream: Readable; size: number } | undefined> {
    const object = this.objectOf(key);
    // The deadline covers opening; the caller paces the body (and the SDK's own signal must not cut it).
    const response: ObjectStream | undefined = await this.call('get', object, options, (deadline) =>
      this.bucket.getStream(object, deadline.signal),
    );
    return response && { stream: response.body, size: response.size };
  }

  async delete(key: string, options?: BlobCallOptions): Promise<void> {
    const object = this.objectOf(key);
    await this.call('delete', object, options, (deadline) =>
      this.bucket.deleteObject(object, deadline.signal),
    );
  }

  async deletePrefix(prefix: string, options?: BlobCallOptions): Promise<void> {
    validateBlobKey(prefix, 'blob key prefix');
    this.checkOpen();
    const dir = `${this.root}${prefix}/`;
    await this.call('delete', dir, options, (deadline) => this.bucket.deletePrefix(dir, deadline.signal));
  }

  close(): Promise<void> {
    this.closing ??= Promise.resolve();
    return this.closing;
  }

  /**
   * A body that ended before its Content-Length: a connection cut at the wrong moment can end it without
   * an error, and s3rver serves an object while it is being replaced.
   */
  private shortRead(object: string, got: number, size: number): BerthError {
    return new BerthError(
      'store_unavailable',
      `s3 get s3://${this.bucket.name}/${object} failed: got ${got} of ${size} bytes`,
    );
  }

  private objectOf(key: string): string {
    validateBlobKey(key);
    this.checkOpen();
    return `${this.root}${key}`;
  }

  private checkOpen(): void {
    if (this.closing) throw closedStoreError(this.description);
  }

  /**
   * Runs `work` under the call's deadline (see {@link S3BlobStoreOptions.timeoutMs}) and the caller's
   * signal, both passed to the SDK; any other failure becomes `store_unavailable` naming the object.
   */
  private async call<T>(
    action: string,
    object: string,
    options: BlobCallOptions | undefined,
    work: (deadline: Deadline) => Promise<T>,
  ): Promise<T> {
    const deadline = new Deadline(
      `s3 ${action} s3://${this.bucket.name}/${object}`,
      this.timeoutMs,
      options?.signal,
    );
    try {
      return await deadline.run(() => work(deadline));
    } catch (err) {
      throw storeError(action, this.bucket.name, object, err);
    }
  }
}

/** The size and base64 SHA-256 of `file`, read as a stream. */
async function digest(
  file: string,
  signal: AbortSignal | undefined,
): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file, signal ? { signal } : {})) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('base64') };
}
