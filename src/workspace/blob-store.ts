/**
 * Where workspace snapshots (and other large, opaque objects) live: a key-value store of byte blobs,
 * streamed in and out so that no blob is ever held whole in memory. `DirBlobStore` keeps them in a local
 * directory, `S3BlobStore` in a bucket; `openBlobStore` picks one from `--blob-store`.
 *
 * Every call has a deadline (`timeoutMs` of each store, from `--store-timeout`), so that a backend that
 * hangs fails the call with `store_unavailable` like one that refuses it. For a transfer (a blob streamed
 * in or out) the deadline bounds a stall, not the whole transfer: it moves with every chunk.
 *
 * Keys are `/`-separated components of `A-Z a-z 0-9 . _ -`, each starting with a letter or digit (so no
 * component is empty, `.` or `..`), like `workspaces/acme/s1/snapshot.tar.gz`. A key and keys under it
 * (`a` and `a/b`) may exist at the same time, as on S3.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Transform } from 'node:stream';
import type { Readable } from 'node:stream';
import { BerthError } from '../errors.js';
import type { Deadline } from '../stores/deadline.js';

/**
 * What every blob-store call takes besides its arguments. `signal` stops the call (the transfer, if one is
 * running): it then rejects with `BerthError('aborted')`.
 */
export interface BlobCallOptions {
  signal?: AbortSignal | undefined;
}

export interface BlobStore {
  /** True when other hosts can read what this host writes (S3); false for a local directory. */
  readonly shared: boolean;
  /** For logs and errors, with no secrets. */
  readonly description: string;
  /** Stores the contents of `file` at `key`, streaming it; replaces any blob there. */
  putFile(key: string, file: string, options?: BlobCallOptions): Promise<void>;
  /** Writes the blob to `file` (atomically: temp + rename); false when there is no such blob. */
  getToFile(key: string, file: string, options?: BlobCallOptions): Promise<boolean>;
  /** Stores `data` at `key`; replaces any blob there. */
  putBuffer(key: string, data: Buffer, options?: BlobCallOptions): Promise<void>;
  /** The blob, or undefined when there is no such blob. Meant for small blobs. */
  getBuffer(key: string, options?: BlobCallOptions): Promise<Buffer | undefined>;
  /**
   * A stream of the blob and its size, or undefined. The caller consumes or destroys the stream; `signal`
   * (and a deadline) covers opening it, not its consumption, which the caller paces.
   */
  openRead(
    key: string,
    options?: BlobCallOptions,
  ): Promise<{ stream: NodeJS.ReadableStream | Readable; size: number } | undefined>;
  /** Deletes the blob; a missing one is fine. */
  delete(key: string, options?: BlobCallOptions): Promise<void>;
  /** Deletes every key under `prefix/` (not `prefix` itself). */
  deletePrefix(prefix: string, options?: BlobCallOptions): Promise<void>;
  /** Releases what the store holds; idempotent. Other calls fail afterwards. */
  close(): Promise<void>;
}

/** The longest key accepted. */
export const MAX_BLOB_KEY_LENGTH = 512;

/**
 * The longest component of a key: filesystems limit a name to 255 bytes, and both the directory store
 * and s3rver add a few characters to some names.
 */
export const MAX_BLOB_KEY_COMPONENT = 200;

const KEY_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/;

/** Throws `invalid_request` unless `key` is a valid blob key (see the header); `what` names it. */
export function validateBlobKey(key: string, what = 'blob key'): void {
  const fail = (why: string) =>
    new BerthError('invalid_request', `${what} ${JSON.stringify(key.slice(0, 600))}: ${why}`);
  if (key.length === 0) throw fail('must not be empty');
  if (key.length > MAX_BLOB_KEY_LENGTH) throw fail(`longer than ${MAX_BLOB_KEY_LENGTH} characters`);
  if (!KEY_PATTERN.test(key)) {
    throw fail('/-separated parts of A-Z a-z 0-9 . _ -, each starting with a letter or digit, are expected');
  }
  const parts = key.split('/');
  // The pattern already excludes it; stated again because it is what keeps keys inside their root.
  if (parts.includes('..')) throw fail('has a .. part');
  if (parts.some((part) => part.length > MAX_BLOB_KEY_COMPONENT)) {
    throw fail(`has a part longer than ${MAX_BLOB_KEY_COMPONENT} characters`);
  }
}

/** The error every call on a closed store throws. */
export function closedStoreError(description: string): BerthError {
  return new BerthError('store_unavailable', `blob store ${description} is closed`);
}

/** A stream that passes chunks through and moves `deadline` with each one: a transfer making progress. */
export function progress(deadline: Deadline): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      deadline.touch();
      done(null, chunk);
    },
  });
}

/** A free temp name in the directory of `file`, so that renaming it onto `file` is atomic. */
export function tempBeside(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${randomBytes(8).toString('hex')}`);
}
