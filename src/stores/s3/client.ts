/**
 * The one S3 client module, shared by the S3 stores (`--store s3://`) and the S3 blob store
 * (`--blob-store s3://`): the URL parser, the checked client factory, and {@link S3Bucket}, a
 * bucket-scoped wrapper that maps every backend failure to Berth's codes and passes each call's
 * `AbortSignal` to the AWS SDK (`abortSignal`).
 *
 * The AWS SDK is loaded on first use ({@link loadS3Sdk}), not when this module is imported: `openBlobStore`
 * and `openStores` import it in every deployment, and only those on S3 should pay for the SDK.
 */
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type * as S3SdkModule from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { BerthError, describeError, isBerthError } from '../../errors.js';
import { abortError, untilAborted } from '../abort.js';

type S3Sdk = typeof S3SdkModule;
let sdk: Promise<S3Sdk> | undefined;

/** The AWS SDK's S3 module, imported once, on first use. */
export function loadS3Sdk(): Promise<S3Sdk> {
  sdk ??= import('@aws-sdk/client-s3');
  return sdk;
}

/** A parsed and validated `s3://` URL. */
export interface S3StoreConfig {
  bucket: string;
  /** Key prefix without leading or trailing `/`; `''` for the bucket's root. */
  prefix: string;
  /** An S3-compatible endpoint (`http://127.0.0.1:9000`), or undefined for AWS S3 itself. */
  endpoint: string | undefined;
  /** The region, or undefined to take it from the AWS SDK's provider chain (`AWS_REGION`, ...). */
  region: string | undefined;
  /** Path-style addressing (`ENDPOINT/BUCKET/KEY`), which most S3-compatible servers need. */
  forcePathStyle: boolean;
}

const PARAMS = ['endpoint', 'region', 'forcePathStyle'] as const;

/**
 * Parses `s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&forcePathStyle=true|false]`, throwing
 * `invalid_config` that starts with `flag` (`--store`, `--blob-store`) and names the part at fault.
 * Credentials are never part of the URL: they come from the AWS SDK's default provider chain
 * (environment, shared config, instance role).
 */
export function parseS3StoreUrl(url: string, flag = '--store'): S3StoreConfig {
  const fail = (why: string) => new BerthError('invalid_config', `${flag} ${redactUrl(url)}: ${why}`);
  const match = /^s3:\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?$/i.exec(url);
  if (!match) throw fail('expected s3://BUCKET/PREFIX?endpoint=URL&region=REGION&forcePathStyle=true');
  const bucket = match[1] ?? '';
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket) || bucket.includes('..')) {
    throw fail(`"${bucket}" is not a valid bucket name (3-63 characters: a-z, 0-9, '.', '-')`);
  }
  const prefix = (match[2] ?? '').replace(/^\/+|\/+$/g, '');
  if (prefix !== '') {
    for (const part of prefix.split('/')) {
      if (!/^[A-Za-z0-9._-]+$/.test(part) || part === '.' || part === '..') {
        throw fail(
          `prefix "${prefix}" must be /-separated parts of A-Z a-z 0-9 . _ - (no empty, . or .. parts)`,
        );
      }
    }
  }
  const params = new URLSearchParams(match[3] ?? '');
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (!(PARAMS as readonly string[]).includes(name)) {
      throw fail(`unknown parameter "${name}"; known: ${PARAMS.join(', ')}`);
    }
    if (seen.has(name)) throw fail(`parameter "${name}" is given twice`);
    seen.add(name);
  }
  let endpoint = params.get('endpoint') ?? undefined;
  if (endpoint !== undefined) {
    let parsed: URL;
    try {
      parsed = new URL(endpoint);
    } catch {
      throw fail(`endpoint "${endpoint}" is not a URL`);
    }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
      throw fail('endpoint must be http:// or https://');
    if (parsed.username || parsed.password)
      throw fail('endpoint must not hold credentials; use AWS_ACCESS_KEY_ID');
    if (parsed.search || parsed.hash) throw fail('endpoint must not have a query or a fragment');
    endpoint = parsed.href.replace(/\/$/, '');
  }
  const region = params.get('region') ?? undefined;
  if (region !== undefined && !/^[a-z0-9-]{1,64}$/.test(region))
    throw fail(`region "${region}" is not valid`);
  const style = params.get('forcePathStyle');
  if (style !== null && style !== 'true' && style !== 'false') {
    throw fail(`forcePathStyle must be true or false, got "${style}"`);
  }
  return { bucket, prefix, endpoint, region, forcePathStyle: style === 'true' };
}

/**
 * A client for the bucket `config` names, checked with HeadBucket: an unreachable endpoint, a missing
 * bucket or refused credentials throw `invalid_config` starting with `what` (e.g. `--store URL`). The
 * caller owns the client and destroys it.
 */
export async function connectS3Bucket(config: S3StoreConfig, what: string): Promise<S3Client> {
  const where = `bucket "${config.bucket}" at ${config.endpoint ?? 'AWS S3'}`;
  const { S3Client, HeadBucketCommand } = await loadS3Sdk();
  const client = new S3Client({
    ...(config.endpoint ? { endpoint: config.endpoint } : {}),
    // Servers behind a custom endpoint ignore the region, but the SDK needs one to sign with.
    ...(config.region ? { region: config.region } : config.endpoint ? { region: 'us-east-1' } : {}),
    forcePathStyle: config.forcePathStyle,
    // Without it an unroutable endpoint hangs for the OS's TCP timeout (minutes).
    requestHandler: { connectionTimeout: 5_000 },
  });
  try {
    await client.send(new HeadBucketCommand({ Bucket: config.bucket }));
  } catch (err) {
    client.destroy();
    const status = (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
    const why =
      status === 404
        ? 'the bucket does not exist'
        : status === 403 || status === 401
          ? 'access denied (check the AWS credentials in the environment)'
          : describeError(err) || (err as { name?: string } | null)?.name || 'unknown error';
    throw new BerthError('invalid_config', `${what}: cannot use ${where}: ${why}`, { cause: err });
  }
  return client;
}

/** The URL without anything that looks like a secret, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@?#]*@/, '//***@');
}

/** Turns a user-given key prefix into the root every key starts with: `''` or `a/b/`. */
export function normalizePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? '').replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  if (trimmed.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new BerthError(
      'invalid_config',
      `S3 key prefix ${JSON.stringify(prefix)} has an empty, . or .. part`,
    );
  }
  return `${trimmed}/`;
}

/** One object of a listing. */
export interface ListedObject {
  key: string;
  size: number;
  /** The server's LastModified, epoch ms (one clock for every writer). */
  lastModified: number;
}

/** What {@link S3Bucket.getJson} found. */
export type JsonRead<T> = { state: 'ok'; value: T } | { state: 'missing' } | { state: 'partial' };

/** An object's body as a Node stream, with its length. */
export interface ObjectStream {
  body: Readable;
  size: number;
}

/**
 * How often, and after how long, a read retries an object whose body is not complete JSON. Real S3
 * never serves a partial object; s3rver can, while the object is being written (it truncates the file and
 * streams into it, and may answer the PUT before the last bytes reach the disk).
 */
const PARTIAL_RETRIES = [10, 25, 50, 100, 200];

/**
 * One bucket on one client, with every failure of the backend (HTTP errors, refused connections, timeouts)
 * mapped to `BerthError('store_unavailable')` naming the operation and the key. Every method takes an
 * optional `signal`, passed to the SDK: when it fires the call rejects with `BerthError('aborted')`.
 */
export class S3Bucket {
  constructor(
    readonly client: S3Client,
    readonly name: string,
  ) {}

  /**
   * Every object under `prefix` in key order, following continuation tokens; `startAfter` skips keys up to
   * and including it; `limit` stops once that many are collected.
   */
  async list(
    prefix: string,
    options: { startAfter?: string; limit?: number; signal?: AbortSignal | undefined } = {},
  ): Promise<ListedObject[]> {
    const { ListObjectsV2Command } = await loadS3Sdk();
    const found: ListedObject[] = [];
    let token: string | undefined;
    do {
      const want = options.limit === undefined ? 1000 : Math.min(1000, options.limit - found.length);
      const command = new ListObjectsV2Command({
        Bucket: this.name,
        Prefix: prefix,
        MaxKeys: want,
        ...(token
          ? { ContinuationToken: token }
          : options.startAfter
            ? { StartAfter: options.startAfter }
            : {}),
      });
      const page = await this.call('list', prefix, options.signal, (abortSignal) =>
        this.client.send(command, { abortSignal }),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        found.push({
          key: object.Key,
          size: object.Size ?? 0,
          lastModified: object.LastModified?.getTime() ?? 0,
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token && (options.limit === undefined || found.length < options.limit));
    return found;
  }

  /** The object's body as a stream with its length, or undefined when there is no such object. */
  async getStream(key: string, signal?: AbortSignal): Promise<ObjectStream | undefined> {
    const { GetObjectCommand } = await loadS3Sdk();
    const command = new GetObjectCommand({ Bucket: this.name, Key: key });
    const response = await this.call('get', key, signal, async (abortSignal) => {
      try {
        return await this.client.send(command, { abortSignal });
      } catch (err) {
        if (isMissing(err)) return undefined;
        throw err;
      }
    });
    if (!response) return undefined;
    // In Node the SDK's body is an http.IncomingMessage (a Readable).
    const body = response.Body as Readable | undefined;
    if (!body || response.ContentLength === undefined) {
      body?.destroy();
      throw storeError('get', this.name, key, new Error('the response has no body or length'));
    }
    return { body, size: response.ContentLength };
  }

  /** The object's body as text, or undefined when there is no such object. */
  async getText(key: string, signal?: AbortSignal): Promise<string | undefined> {
    const object = await this.getStream(key, signal);
    if (!object) return undefined;
    return this.call('get', key, signal, async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of object.body) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    });
  }

  /**
   * The object parsed as JSON. A body that does not parse is re-read a few times before it is reported as
   * `partial`: every object these stores write is a JSON object or array, and no proper prefix of one
   * parses, so a parse failure means a write still in flight.
   */
  async getJson<T>(key: string, signal?: AbortSignal): Promise<JsonRead<T>> {
    for (let attempt = 0; ; attempt++) {
      const text = await this.getText(key, signal);
      if (text === undefined) return { state: 'missing' };
      try {
        return { state: 'ok', value: JSON.parse(text) as T };
      } catch {
        const wait = PARTIAL_RETRIES[attempt];
        if (wait === undefined) return { state: 'partial' };
        await sleep(wait, undefined, signal ? { signal } : {}).catch(() => {
          throw abortError(signal!, `s3 get s3://${this.name}/${key}`);
        });
      }
    }
  }

  /** Writes a JSON text; a string body goes with a plain Content-Length. */
  async put(key: string, body: string, signal?: AbortSignal): Promise<void> {
    await this.putObject(key, body, { contentType: 'application/json' }, signal);
  }

  /**
   * Writes the object. A stream body needs its `contentLength`; given `sha256` (base64), the checksum goes
   * in a header and S3 verifies the body against it. Left to the SDK (whose default computes one), a
   * streamed body is sent aws-chunked with a trailing checksum, which s3rver and some other S3-compatible
   * servers store as is, chunk framing included.
   */
  async putObject(
    key: string,
    body: string | Buffer | Readable,
    options: { contentType: string; contentLength?: number; sha256?: string },
    signal?: AbortSignal,
  ): Promise<void> {
    const { PutObjectCommand } = await loadS3Sdk();
    const command = new PutObjectCommand({
      Bucket: this.name,
      Key: key,
      Body: body,
      ContentType: options.contentType,
      ...(options.contentLength !== undefined && { ContentLength: options.contentLength }),
      ...(options.sha256 !== undefined && { ChecksumSHA256: options.sha256 }),
    });
    await this.call('put', key, signal, (abortSignal) => this.client.send(command, { abortSignal }));
  }

  /** Deletes one object; S3 answers a delete of an absent key with success. */
  async deleteObject(key: string, signal?: AbortSignal): Promise<void> {
    const { DeleteObjectCommand } = await loadS3Sdk();
    const command = new DeleteObjectCommand({ Bucket: this.name, Key: key });
    await this.call('delete', key, signal, (abortSignal) => this.client.send(command, { abortSignal }));
  }

  /** Deletes the keys (absent ones are fine), up to 1000 per request. */
  async deleteMany(keys: readonly string[], signal?: AbortSignal): Promise<void> {
    const { DeleteObjectsCommand } = await loadS3Sdk();
    for (let at = 0; at < keys.length; at += 1000) {
      const batch = keys.slice(at, at + 1000);
      const command = new DeleteObjectsCommand({
        Bucket: this.name,
        Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
      });
      const result = await this.call('delete', batch[0]!, signal, (abortSignal) =>
        this.client.send(command, { abortSignal }),
      );
      const failed = result.Errors?.[0];
      if (failed) {
        const why = `${failed.Code ?? 'Error'}: ${failed.Message ?? ''}`;
        throw new BerthError(
          'store_unavailable',
          `s3 delete s3://${this.name}/${failed.Key ?? ''} failed: ${why}`,
        );
      }
    }
  }

  /** Deletes every object under `prefix`. */
  async deletePrefix(prefix: string, signal?: AbortSignal): Promise<void> {
    const objects = await this.list(prefix, { signal });
    await this.deleteMany(
      objects.map((object) => object.key),
      signal,
    );
  }

  /**
   * Runs one request with the caller's signal, mapping its failure: `aborted` when the signal fired
   * (the SDK's own AbortError says less), else `store_unavailable`.
   */
  private async call<T>(
    action: string,
    key: string,
    signal: AbortSignal | undefined,
    send: (abortSignal: AbortSignal | undefined) => Promise<T>,
  ): Promise<T> {
    const what = `s3 ${action} s3://${this.name}/${key}`;
    try {
      return await untilAborted(signal, what, () => send(signal));
    } catch (err) {
      if (signal?.aborted) throw isBerthError(err) ? err : abortError(signal, what);
      throw storeError(action, this.name, key, err);
    }
  }
}

/** True for the errors S3 answers a read of an absent key with. */
export function isMissing(err: unknown): boolean {
  const e = err as { name?: unknown; $metadata?: { httpStatusCode?: unknown } } | null;
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}

/** A backend failure as `store_unavailable`, naming the operation, the bucket and the key. */
export function storeError(action: string, bucket: string, key: string, err: unknown): BerthError {
  if (err instanceof BerthError) return err;
  const e = err as { name?: unknown; code?: unknown } | null;
  const kind = typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'Error';
  return new BerthError(
    'store_unavailable',
    `s3 ${action} s3://${bucket}/${key} failed: ${kind}: ${describeError(err)}`,
    { cause: err },
  );
}
