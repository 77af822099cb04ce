/**
 * What the S3 stores share besides the client (`s3/client.ts`): key encoding, writer ids, and small
 * concurrency helpers. The key layout itself is described in `s3/index.ts`.
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
import { MAX_CREATED_AT } from '../list-cursor.js';
import type { CursorPosition } from '../list-cursor.js';

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

/**
 * The name of an index object that sorts newest first (the registry's and the catalog's):
 * {@link MAX_CREATED_AT} - createdAt as 15 digits, then the id's UTF-8 bytes complemented (255 - b) in hex, then `~`, which sorts
 * after every hex digit so that a longer id with the same start sorts first (ids descending, as SQLite
 * orders). Long ids make names longer than a component: store them through {@link chunk}.
 */
export function indexName(createdAt: number, id: string): string {
  const inverted = Array.from(Buffer.from(id, 'utf8'), (b) => (255 - b).toString(16).padStart(2, '0'));
  return `${pad(MAX_CREATED_AT - createdAt, 15)}-${inverted.join('')}~`;
}

/** The position an {@link indexName} (its components joined again) names, or undefined for another name. */
export function parseIndexName(name: string): CursorPosition | undefined {
  const match = /^(\d{15})-((?:[0-9a-f]{2})*)~$/.exec(name);
  if (!match) return undefined;
  const bytes = (match[2]!.match(/../g) ?? []).map((hex) => 255 - Number.parseInt(hex, 16));
  return { createdAt: MAX_CREATED_AT - Number(match[1]), id: Buffer.from(bytes).toString('utf8') };
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

/**
 * The unique part of the names one store instance writes: its writer id, then a 10-digit counter, so
 * that two writers never write the same name (s3rver does not make overwrites atomic).
 */
export class WriterNames {
  readonly writer = newWriterId();
  private counter = 0;

  next(): string {
    return `${this.writer}${pad(this.counter++, 10)}`;
  }
}
