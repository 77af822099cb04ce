/**
 * Compaction of one transcript key of the S3 session store (protocol in the header of
 * `s3/session-store.ts`):
 *
 *   c<seq:12>-<writer:10><n:10>   a segment: parts merged by compaction, {"v":1,"parts":[{"n","m","e"}]};
 *                                 its seq is the highest seq of the parts it holds
 *
 * A segment is a cache of parts by name, never a new order, so merging changes nothing a reader sees.
 * Only objects whose content is in the new segment are deleted, and only after it is written.
 */
import type { S3Bucket } from './client.js';
import { mapLimit, pad } from './common.js';
import type { WriterNames } from './common.js';
import { byName, PART_NAME, readObject, SEGMENT_NAME } from './transcript-objects.js';
import type { KeyView, Part, SegmentBody } from './transcript-objects.js';

export interface CompactOptions {
  /** Merge every segment, not only the small ones (an explicit `compact()`). */
  all: boolean;
  /** Loose parts a key may hold before an append merges them. */
  compactAfterParts: number;
  /** GETs in flight at once. */
  concurrency: number;
  names: WriterNames;
}

/**
 * Merges the view's loose parts, and each next-newest segment no bigger than about what has been merged
 * so far (`all`: every segment), into one new segment, then deletes what it merged. Like a binary
 * counter, that keeps O(log n) segments and rewrites each entry O(log n) times; the 1.5 lets segments
 * whose sizes differ by JSON overhead still merge.
 */
export async function compactKey(
  bucket: S3Bucket,
  dir: string,
  view: KeyView,
  options: CompactOptions,
): Promise<void> {
  const { all } = options;
  const loose = [...view.loose.values()];
  const segments = [...view.objects]
    .filter(([name]) => SEGMENT_NAME.test(name))
    .sort(([a], [b]) => byName(b, a));
  if (!all && loose.length <= options.compactAfterParts) return;
  if (all && loose.length + segments.length <= 1) return;
  let size = loose.reduce((sum, part) => sum + (view.objects.get(part.name) ?? 0), 0);
  const merged: string[] = [];
  for (const [name, bytes] of segments) {
    if (!all && bytes > 1.5 * size) break;
    merged.push(name);
    size += bytes;
  }
  const parts = new Map<string, Part>();
  for (const part of loose) parts.set(part.name, part);
  const reads = await mapLimit(merged, options.concurrency, (name) =>
    readObject(bucket, dir, { name, kind: 'segment', seq: 0, size: 0 }),
  );
  for (const read of reads) {
    // Gone or in flight: another instance is compacting this key; leave it to them this time.
    if (!Array.isArray(read)) return;
    for (const part of read) parts.set(part.name, part);
  }
  const ordered = [...parts.values()].sort((a, b) => byName(a.name, b.name));
  const last = ordered.at(-1);
  if (!last) return;
  const seq = Number(PART_NAME.exec(last.name)?.[1] ?? view.maxSeq);
  const name = `c${pad(seq, 12)}-${options.names.next()}`;
  const body = JSON.stringify({
    v: 1,
    parts: ordered.map((part) => ({ n: part.name, m: part.mtime, e: part.entries })),
  } satisfies SegmentBody);
  await bucket.put(dir + name, body);
  view.objects.set(name, Buffer.byteLength(body));
  const replaced = [...loose.map((part) => part.name), ...merged];
  await bucket.deleteMany(replaced.map((object) => dir + object));
  for (const object of replaced) {
    view.objects.delete(object);
    view.loose.delete(object);
  }
}
