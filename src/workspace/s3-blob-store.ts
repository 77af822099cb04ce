/**
 * A {@link BlobStore} on S3 or any S3-compatible server: blobs every host can read.
 *
 * A key `K` is the object `PREFIX/K` in the bucket. A file is put as one streamed PutObject with its
 * length and SHA-256 (so the file is read twice, and a blob is at most 5 GiB, S3's limit for one PUT);
 * gets stream the body and check its length. S3 replaces an object atomically, so a reader gets the old
 * or the new blob (s3rver does not: see the conformance cases). Every failure of the backend becomes
 * `BerthError('store_unavailable')` naming the operation and the object.
 */
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { GetObjectCommandOutput, S3Client } from '@aws-sdk/client-s3';
import { BerthError } from '../errors.js';
import { isMissing, normalizePrefix, S3Bucket, storeError } from '../stores/s3/common.js';
import type { BlobStore } from './blob-store.js';
import { closedStoreError, tempBeside, validateBlobKey } from './blob-store.js';

export interface S3BlobStoreOptions {
  /** A configured client; the store never destroys it. */
  client: S3Client;
  bucket: string;
  /**
   * Every key starts with it (`a/b` stores keys under `a/b/`).
   * @default '' (the bucket's root)
   */
  prefix?: string;
}

export class S3BlobStore implements BlobStore {
  readonly shared = true;
  readonly description: string;
  private readonly client: S3Client;
  private readonly bucket: S3Bucket;
  /** `''` or `a/b/`. */
  private readonly root: string;
  private closing: Promise<void> | undefined;

  constructor(options: S3BlobStoreOptions) {
    this.client = options.client;
    this.bucket = new S3Bucket(options.client, options.bucket);
    this.root = normalizePrefix(options.prefix);
    this.description = `s3://${options.bucket}/${this.root}`;
  }

  async putFile(key: string, file: string): Promise<void> {
    const object = this.objectOf(key);
    // Outside the error mapping: a missing source is the caller's fault, not the backend's.
    const { size, sha256 } = await digest(file);
    // Exactly the bytes hashed, should the file grow meanwhile (a read stream cannot take `end: -1`).
    const stream = size > 0 ? createReadStream(file, { start: 0, end: size - 1 }) : undefined;
    try {
      await this.send('put', object, () =>
        this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket.name,
            Key: object,
            Body: stream ?? Buffer.alloc(0),
            ContentLength: size,
            // Given, the checksum goes in a header and S3 verifies the body against it. Left to the SDK
            // (whose default computes one), a streamed body is sent aws-chunked with a trailing checksum,
            // which s3rver and some other S3-compatible servers store as is, chunk framing included.
            ChecksumSHA256: sha256,
            ContentType: 'application/octet-stream',
          }),
        ),
      );
    } finally {
      stream?.destroy();
    }
  }

  async getToFile(key: string, file: string): Promise<boolean> {
    const response = await this.get(key);
    if (!response) return false;
    const { body, size, object } = response;
    const temp = tempBeside(file);
    try {
      const out = createWriteStream(temp, { flags: 'wx' });
      await this.send('get', object, () => pipeline(body, out));
      if (out.bytesWritten !== size) throw this.shortRead(object, out.bytesWritten, size);
      await rename(temp, file);
      return true;
    } catch (err) {
      body.destroy();
      await rm(temp, { force: true });
      throw err;
    }
  }

  async putBuffer(key: string, data: Buffer): Promise<void> {
    const object = this.objectOf(key);
    await this.send('put', object, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket.name,
          Key: object,
          Body: data,
          ContentType: 'application/octet-stream',
        }),
      ),
    );
  }

  async getBuffer(key: string): Promise<Buffer | undefined> {
    const response = await this.get(key);
    if (!response) return undefined;
    const chunks: Buffer[] = [];
    await this.send('get', response.object, async () => {
      for await (const chunk of response.body) chunks.push(chunk as Buffer);
    });
    const data = Buffer.concat(chunks);
    if (data.length !== response.size) throw this.shortRead(response.object, data.length, response.size);
    return data;
  }

  async openRead(key: string): Promise<{ stream: Readable; size: number } | undefined> {
    const response = await this.get(key);
    return response && { stream: response.body, size: response.size };
  }

  async delete(key: string): Promise<void> {
    const object = this.objectOf(key);
    // S3 answers a delete of an absent key with success.
    await this.send('delete', object, () =>
      this.client.send(new DeleteObjectCommand({ Bucket: this.bucket.name, Key: object })),
    );
  }

  async deletePrefix(prefix: string): Promise<void> {
    validateBlobKey(prefix, 'blob key prefix');
    this.checkOpen();
    await this.bucket.deletePrefix(`${this.root}${prefix}/`);
  }

  close(): Promise<void> {
    this.closing ??= Promise.resolve();
    return this.closing;
  }

  /** The object's body as a Node stream with its length, or undefined when there is no such object. */
  private async get(key: string): Promise<{ body: Readable; size: number; object: string } | undefined> {
    const object = this.objectOf(key);
    let response: GetObjectCommandOutput;
    try {
      response = await this.client.send(new GetObjectCommand({ Bucket: this.bucket.name, Key: object }));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw storeError('get', this.bucket.name, object, err);
    }
    // In Node the SDK's body is an http.IncomingMessage (a Readable).
    const body = response.Body as Readable | undefined;
    if (!body || response.ContentLength === undefined) {
      body?.destroy();
      throw storeError('get', this.bucket.name, object, new Error('the response has no body or length'));
    }
    return { body, size: response.ContentLength, object };
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

  private async send<T>(action: string, object: string, work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (err) {
      throw storeError(action, this.bucket.name, object, err);
    }
  }
}

/** The size and base64 SHA-256 of `file`, read as a stream. */
async function digest(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('base64') };
}
