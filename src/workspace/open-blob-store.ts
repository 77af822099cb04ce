/**
 * `--blob-store URL` to a {@link BlobStore}: where workspace snapshots live.
 *
 * - none: the directory `DATA_DIR/blobs` (this host only).
 * - `file:/ABSOLUTE/PATH`, `file:///ABSOLUTE/PATH` or `/ABSOLUTE/PATH`: that directory.
 * - `s3://BUCKET/PREFIX?endpoint=URL&region=R&forcePathStyle=true`: the bucket, parsed as `--store s3://`
 *   is; credentials come from the AWS SDK's default provider chain (environment, shared config, instance
 *   role), never from the URL.
 *
 * The AWS SDK and the S3 adapter load only when an `s3://` URL is opened.
 */
import { mkdir, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { BerthError, describeError } from '../errors.js';
import { DEFAULT_STORE_TIMEOUT_MS } from '../stores/deadline.js';
import type { BlobStore } from './blob-store.js';
import { DirBlobStore } from './dir-blob-store.js';
import { connectS3Bucket, parseS3StoreUrl, redactUrl as redact } from '../stores/s3/client.js';

export type { BlobStore } from './blob-store.js';

export const BLOB_STORE_URL_FORMS = [
  'file:/ABSOLUTE/PATH',
  '/ABSOLUTE/PATH',
  's3://BUCKET/PREFIX?endpoint=URL&region=R&forcePathStyle=true',
] as const;

/** Options of {@link openBlobStore}. */
export interface OpenBlobStoreOptions {
  /**
   * Each call's deadline, and a transfer's longest stall (`--store-timeout`).
   * @default 10000
   */
  timeoutMs?: number;
}

/**
 * Opens the blob store `url` names, or `DATA_DIR/blobs` when it is null. A directory is created if
 * missing; an S3 bucket is checked with HeadBucket. Either failing, or a bad URL, throws
 * `invalid_config` naming `--blob-store` (with any password in the URL hidden). The returned store's
 * `close()` also destroys the S3 client it made.
 */
export async function openBlobStore(
  url: string | null,
  dataDir: string,
  options: OpenBlobStoreOptions = {},
): Promise<BlobStore> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
  if (url === null) return openDir(path.join(path.resolve(dataDir), 'blobs'), '(default)', timeoutMs);
  if (url.startsWith('/')) return openDir(checkedPath(url, url), url, timeoutMs);
  const colon = url.indexOf(':');
  const scheme = colon > 0 ? url.slice(0, colon).toLowerCase() : '';
  switch (scheme) {
    case 'file':
      return openDir(fileUrlPath(url), url, timeoutMs);
    case 's3':
      return openS3(url, timeoutMs);
    default:
      throw new BerthError(
        'invalid_config',
        `--blob-store ${JSON.stringify(redact(url))}: unsupported blob store URL; expected one of ${BLOB_STORE_URL_FORMS.join(', ')}`,
      );
  }
}

async function openDir(root: string, url: string, timeoutMs: number): Promise<BlobStore> {
  try {
    await mkdir(root, { recursive: true });
    if (!(await stat(root)).isDirectory()) throw new Error(`${root} is not a directory`);
  } catch (err) {
    throw new BerthError(
      'invalid_config',
      `--blob-store ${redact(url)}: cannot use the directory ${root}: ${describeError(err)}`,
      { cause: err },
    );
  }
  return new DirBlobStore({ root, timeoutMs });
}

/** The path of a `file:` URL, which must be absolute and name no host. */
function fileUrlPath(url: string): string {
  const fail = () =>
    new BerthError(
      'invalid_config',
      `--blob-store ${redact(url)}: expected file:/ABSOLUTE/PATH or file:///ABSOLUTE/PATH`,
    );
  // `new URL('file:rel')` would quietly make the path absolute, so the shape is checked first.
  if (!/^file:(\/\/\/|\/(?!\/))[^?#]*$/i.test(url)) throw fail();
  let file: string;
  try {
    file = fileURLToPath(`file://${url.slice('file:'.length).replace(/^\/\/(?=\/)/, '')}`);
  } catch {
    throw fail();
  }
  return checkedPath(file, url);
}

function checkedPath(file: string, url: string): string {
  if (file.includes('\0'))
    throw new BerthError('invalid_config', `--blob-store ${redact(url)}: NUL in the path`);
  return path.resolve(file);
}

async function openS3(url: string, timeoutMs: number): Promise<BlobStore> {
  const config = parseS3StoreUrl(url, '--blob-store');
  const [client, { S3BlobStore }] = await Promise.all([
    connectS3Bucket(config, `--blob-store ${redact(url)}`),
    import('./s3-blob-store.js'),
  ]);
  const store = new S3BlobStore({ client, bucket: config.bucket, prefix: config.prefix, timeoutMs });
  return ownClient(store, () => client.destroy());
}

/** `store`, whose `close()` then also runs `release` (once, even if closing the store failed). */
function ownClient(store: BlobStore, release: () => void): BlobStore {
  let closing: Promise<void> | undefined;
  return {
    shared: store.shared,
    description: store.description,
    putFile: (key, file, options) => store.putFile(key, file, options),
    getToFile: (key, file, options) => store.getToFile(key, file, options),
    putBuffer: (key, data, options) => store.putBuffer(key, data, options),
    getBuffer: (key, options) => store.getBuffer(key, options),
    openRead: (key, options) => store.openRead(key, options),
    delete: (key, options) => store.delete(key, options),
    deletePrefix: (prefix, options) => store.deletePrefix(prefix, options),
    close() {
      closing ??= store.close().finally(release);
      return closing;
    },
  };
}
