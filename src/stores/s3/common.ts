/**
 * What the S3 stores share: key encoding, a bucket-scoped wrapper around the S3 client that maps failures
 * to Berth's codes, writer ids, and small concurrency helpers. The key layout itself is described in
 * `s3.ts`.
 *
 * Two properties of the keys matter everywhere:
 * - Every encoded name is prefix-free among its siblings (no sibling name is a proper prefix of another).
 *   S3 orders keys by their bytes, and a filesystem-backed server such as s3rver orders them by walking
 *   directories component by component; the two orders agree exactly when sibling components are
 *   prefix-free, and ListObjectsV2 pagination (`StartAfter`, continuation tokens) is only correct when the
 *   server's order is the byte order.
 * - No path component is empty, `.` or `..`, or longer than {@link MAX_COMPONENT} characters, so that a
 *   server that maps keys onto files (s3rver does) never collapses, escapes or rejects a key.
 */
import { randomBytes } from 'node:crypto';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { BerthError, describeError } from '../../errors.js';

/**
 * The longest path component written. Filesystems limit a file name to 255 bytes, and s3rver appends up to
 * 22 characters (`._S3rver_metadata.json`) to the last component of a key.
 */
export const MAX_COMPONENT = 200;

/** The characters an encoded segment keeps as they are; everything else is escaped. */
const PLAIN = /^[A-Za-z0-9_-]$/;

/**
 * Encodes any string (unicode, `/`, `%`, lone surrogates, the empty string) as one or more path components
 * joined by `/`. Plain characters stay readable (`acme`, UUIDs); UTF-8 bytes of other characters become
 * `%XX`, and a lone UTF-16 surrogate becomes `.XXXX`, so distinct strings never share an encoding. The
 * result ends with `~`, which nothing inside it contains: that makes encodings prefix-free. An encoding
 * longer than {@link MAX_COMPONENT} is cut into components of exactly that length, the last one shorter
 * and ending with `~`; a non-final component has no `~`, so chunked encodings stay prefix-free too.
 */
export function encodeSegment(value: string): string {
  let out = '';
  for (const char of value) {
    const code = char.codePointAt(0)!;
    if (PLAIN.test(char)) out += char;
    else if (code >= 0xd800 && code <= 0xdfff) out += `.${code.toString(16).toUpperCase().padStart(4, '0')}`;
    else
      for (const byte of Buffer.from(char, 'utf8'))
        out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return chunk(`${out}~`);
}

/** Cuts `text` into `/`-joined components of {@link MAX_COMPONENT} characters (the last one shorter). */
export function chunk(text: string): string {
  if (text.length <= MAX_COMPONENT) return text;
  const parts: string[] = [];
  for (let at = 0; at < text.length; at += MAX_COMPONENT) parts.push(text.slice(at, at + MAX_COMPONENT));
  return parts.join('/');
}

/**
 * Decodes the segment that starts at `components[start]` (see {@link encodeSegment}), or returns undefined
 * when the components do not hold a well-formed one.
 */
export function decodeSegment(
  components: readonly string[],
  start: number,
): { value: string; next: number } | undefined {
  let text = '';
  let at = start;
  for (;;) {
    const component = components[at++];
    if (component === undefined) return undefined;
    text += component;
    if (component.endsWith('~')) break;
    if (component.length !== MAX_COMPONENT) return undefined;
  }
  const body = text.slice(0, -1);
  let value = '';
  let bytes: number[] = [];
  const flush = () => {
    if (bytes.length > 0) value += Buffer.from(bytes).toString('utf8');
    bytes = [];
  };
  for (let i = 0; i < body.length;) {
    const char = body[i]!;
    if (char === '%') {
      const byte = Number.parseInt(body.slice(i + 1, i + 3), 16);
      if (!/^[0-9A-F]{2}$/.test(body.slice(i + 1, i + 3)) || Number.isNaN(byte)) return undefined;
      bytes.push(byte);
      i += 3;
    } else if (char === '.') {
      const unit = body.slice(i + 1, i + 5);
      if (!/^[0-9A-F]{4}$/.test(unit)) return undefined;
      flush();
      value += String.fromCharCode(Number.parseInt(unit, 16));
      i += 5;
    } else if (PLAIN.test(char)) {
      flush();
      value += char;
      i += 1;
    } else {
      return undefined;
    }
  }
  flush();
  return { value, next: at };
}

/** `n` as `width` decimal digits, so that names sort by number. */
export function pad(n: number, width: number): string {
  return String(n).padStart(width, '0');
}

/**
 * A random id for one store instance. Object names that instance writes carry it with a per-instance
 * counter, so two writers never write the same name (s3rver does not make overwrites atomic).
 */
export function newWriterId(): string {
  const alphabet = '0123456789abcdefghijklmnopqrstuvwxyz';
  return Array.from(randomBytes(WRITER_ID_LENGTH), (b) => alphabet[b % alphabet.length]).join('');
}

/** Characters in a writer id (`[0-9a-z]`): 36^10 ids, so two instances drawing the same one is no concern. */
export const WRITER_ID_LENGTH = 10;

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

/**
 * How often, and after how long, a read retries an object whose body is not complete JSON. Real S3
 * never serves a partial object; s3rver can, while the object is being written (it truncates the file and
 * streams into it, and may answer the PUT before the last bytes reach the disk).
 */
const PARTIAL_RETRIES = [10, 25, 50, 100, 200];

/**
 * One bucket on one client, with every failure of the backend (HTTP errors, refused connections, timeouts)
 * mapped to `BerthError('store_unavailable')` naming the operation and the key.
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
  async list(prefix: string, options: { startAfter?: string; limit?: number } = {}): Promise<ListedObject[]> {
    const found: ListedObject[] = [];
    let token: string | undefined;
    do {
      const want = options.limit === undefined ? 1000 : Math.min(1000, options.limit - found.length);
      const page = await this.call('list', prefix, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.name,
            Prefix: prefix,
            MaxKeys: want,
            ...(token
              ? { ContinuationToken: token }
              : options.startAfter
                ? { StartAfter: options.startAfter }
                : {}),
          }),
        ),
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

  /** The object's body as text, or undefined when there is no such object. */
  async getText(key: string): Promise<string | undefined> {
    try {
      const response = await this.client.send(new GetObjectCommand({ Bucket: this.name, Key: key }));
      return (await response.Body?.transformToString('utf8')) ?? '';
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw storeError('get', this.name, key, err);
    }
  }

  /**
   * The object parsed as JSON. A body that does not parse is re-read a few times before it is reported as
   * `partial`: every object these stores write is a JSON object or array, and no proper prefix of one
   * parses, so a parse failure means a write still in flight.
   */
  async getJson<T>(key: string): Promise<JsonRead<T>> {
    for (let attempt = 0; ; attempt++) {
      const text = await this.getText(key);
      if (text === undefined) return { state: 'missing' };
      try {
        return { state: 'ok', value: JSON.parse(text) as T };
      } catch {
        const wait = PARTIAL_RETRIES[attempt];
        if (wait === undefined) return { state: 'partial' };
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  /** Writes the object; the body is a string, so the SDK sends it with a plain Content-Length. */
  async put(key: string, body: string): Promise<void> {
    await this.call('put', key, () =>
      this.client.send(
        new PutObjectCommand({
          Bucket: this.name,
          Key: key,
          Body: body,
          ContentType: 'application/json',
        }),
      ),
    );
  }

  /** Deletes the keys (absent ones are fine), up to 1000 per request. */
  async deleteMany(keys: readonly string[]): Promise<void> {
    for (let at = 0; at < keys.length; at += 1000) {
      const batch = keys.slice(at, at + 1000);
      const result = await this.call('delete', batch[0]!, () =>
        this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.name,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        ),
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
  async deletePrefix(prefix: string): Promise<void> {
    const objects = await this.list(prefix);
    await this.deleteMany(objects.map((object) => object.key));
  }

  private async call<T>(action: string, key: string, send: () => Promise<T>): Promise<T> {
    try {
      return await send();
    } catch (err) {
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
    {
      cause: err,
    },
  );
}

/** Runs `work` over `items` with at most `limit` calls in flight; results keep the order of `items`. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  work: (item: T) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Runs tasks one at a time per key, in call order, within one process. Other processes are not excluded:
 * the stores' object layouts are what make concurrent writers safe.
 */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    const result = previous.then(task, task);
    const tail = result.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return result;
  }

  /** True when a task for `key` is queued or running. */
  busy(key: string): boolean {
    return this.tails.has(key);
  }
}
