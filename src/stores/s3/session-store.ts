/**
 * The SDK `SessionStore` on S3 (or any S3-compatible server), for `options.sessionStore`.
 *
 * It needs nothing from the server but PUT, GET, ListObjectsV2, DeleteObjects and read-after-write
 * consistency: no conditional writes (s3rver has none, and many S3-compatible servers lack them), no
 * object ever overwritten, no wall clock compared between writers. Key layout under the store's root:
 *
 *   transcripts/<projectKey>/<sessionId>/<subpath, or @ for the main transcript>/
 *     p<seq:12>-<writer:10><n:10>   a part: one append's new entries, {"v":1,"m":mtime,"e":[...]}
 *     c<seq:12>-<writer:10><n:10>   a segment: parts merged by compaction, {"v":1,"parts":[{"n","m","e"}]};
 *                                   its seq is the highest seq of the parts it holds
 *   summaries/<projectKey>/<sessionId>/
 *     v<parts:12>-<mtime:15>-<writer:10><n:10>   a summary version, {"v":1,"mtime":..,"data":{...}}
 *
 * Key parts are encoded by `encodeSegment` (`s3/common.ts`): readable for plain ids, collision-free for
 * anything else. `<writer>` is a random id per store instance and `<n>` its counter, so names never repeat.
 *
 * Modules by job: this one appends, loads, lists and deletes, and keeps each key's view up to date;
 * `s3/transcript-objects.ts` holds the object names and bodies, the views and the full read of a key;
 * `s3/transcript-compaction.ts` merges parts into segments; `s3/transcript-summaries.ts` writes, prunes
 * and lists summary versions.
 *
 * Order. A transcript is its parts in name order, and a part's name is fixed when it is written, so the
 * order never changes once a part is visible, whatever compaction does. Before each PUT the writer lists
 * the key and numbers its part one above the highest seq listed (a Lamport clock kept in the names):
 * an append that finished before another began is listed by it and so sorts before it; one store
 * instance runs its appends to a key one at a time, in call order. Two appends in flight at once on two
 * instances may draw the same seq; the writer id then orders them, the same way for every reader.
 *
 * Compaction. When a key has more than `compactAfterParts` loose parts, the appender writes a new segment
 * holding them and, newest first, each segment no bigger than what it has merged so far (like a binary
 * counter: a key keeps O(log n) segments and each entry is rewritten O(log n) times), and only after that
 * PUT deletes what it merged. A segment is a cache of parts by name, not a new order: `load` lists the
 * key, GETs every segment and loose part in parallel and merges the parts by name, so a part held twice
 * (two compactors at once, or a delete that has not happened yet) counts once. Every deleted object's
 * parts are in the deleter's segment, written before the delete; a reader whose GET finds an object gone
 * lists again and GETs what is new. A body that does not parse is a write in flight (s3rver is not
 * atomic) and is left out.
 *
 * Idempotency. An entry whose `uuid` the key holds is not written again: each instance keeps, per key, the
 * uuids and the summary of the parts it has read (`KeyView`), brought up to date from the listing it makes
 * before each append. Two instances appending the same uuid at the same moment can both write it; `load`
 * returns each uuid once, at its first occurrence, and summaries fold the same deduplicated sequence.
 *
 * Summaries. A main-transcript append writes a summary version of every part its writer has folded,
 * named by how many parts that is, and at the same time lists the key again; if that listing shows parts
 * the writer had not folded (another writer's), it folds them and writes another version. Parts are never
 * removed logically, so a listing that begins after another ends sees a superset of its parts, and the
 * writer whose listing (made after its own PUT) comes last sees every part whose PUT has completed: once
 * appends stop, the version with the highest count is a fold of the whole transcript, deduplicated as
 * `load` returns it. `listSessionSummaries` reads the newest version of each session (falling back to an
 * older one if it is gone or in flight); `listSessions` takes ids and mtimes from the version names, one
 * listing for the project. A version's mtime is the greatest mtime of the parts it covers, and a part's is
 * epoch ms at least one above every part its writer has read, so neither goes back for a reader. Older
 * versions are deleted every few versions a writer writes. A writer that dies between its part and its
 * summary leaves the summary (and `listSessions`' mtime) one append behind until the next append.
 *
 * Cost per append: a listing, the part's PUT, and for a main transcript the summary PUT in parallel with
 * a second listing; now and then a compaction (a few GETs, a PUT, a DeleteObjects) or a pruning of
 * summary versions. A load is a listing plus one GET per segment and loose part, in parallel.
 * Keys are limited by S3's 1024 bytes per object key: a projectKey, sessionId and subpath of a few hundred
 * characters together are fine.
 */
import type { SessionKey, SessionStoreEntry, SessionSummaryEntry } from '@anthropic-ai/claude-agent-sdk';
import type { S3Client } from '@aws-sdk/client-s3';
import { normalizePrefix, S3Bucket } from './client.js';
import type { ListedObject } from './client.js';
import { decodeSegment, encodeSegment, KeyedQueue, mapLimit, pad, WriterNames } from './common.js';
import { compactKey } from './transcript-compaction.js';
import { absorb, fresh, keyId, MAIN, parseListing, readKey, viewFrom } from './transcript-objects.js';
import type { KeyView, Part, PartBody } from './transcript-objects.js';
import { pruneSummaries, summaryDir, summaryVersions, writeSummary } from './transcript-summaries.js';
import type { SummaryBody } from './transcript-summaries.js';
import type { CompleteSessionStore } from '../types.js';

/** Options of {@link S3SessionStore}. */
export interface S3SessionStoreOptions {
  /** A configured client; the store never destroys it. */
  client: S3Client;
  bucket: string;
  /**
   * Key prefix of everything the store writes, e.g. `berth/prod`.
   * @default ''
   */
  prefix?: string;
  /**
   * Loose parts a key may hold before an append merges them into a segment.
   * @default 16
   */
  compactAfterParts?: number;
  /**
   * How many keys keep an in-memory view (their uuids and summary) between appends; a key without one is
   * read whole on its next append.
   * @default 512
   */
  cachedKeys?: number;
  /**
   * GETs in flight at once for one `load` or `listSessionSummaries`.
   * @default 16
   */
  concurrency?: number;
}

/**
 * Transcripts in S3, for the SDK's `options.sessionStore`; see the header of `s3/session-store.ts` for the
 * object layout and why concurrent writers, compaction and readers are safe without conditional writes.
 *
 * Beyond the SDK's contract: an entry whose `uuid` the key already holds is skipped, session summaries are
 * maintained with `foldSessionSummary`, and long transcripts are compacted so that a load takes one listing
 * and a handful of parallel GETs. Failures of the backend reject with `BerthError('store_unavailable')`.
 */
export class S3SessionStore implements CompleteSessionStore {
  private readonly bucket: S3Bucket;
  private readonly root: string;
  private readonly compactAfterParts: number;
  private readonly cachedKeys: number;
  private readonly concurrency: number;
  private readonly names = new WriterNames();
  private readonly queue = new KeyedQueue();
  /** Views by key id, least recently used first. */
  private readonly views = new Map<string, KeyView>();

  constructor(options: S3SessionStoreOptions) {
    this.bucket = new S3Bucket(options.client, options.bucket);
    this.root = normalizePrefix(options.prefix);
    this.compactAfterParts = Math.max(1, Math.floor(options.compactAfterParts ?? 16));
    this.cachedKeys = Math.max(1, Math.floor(options.cachedKeys ?? 512));
    this.concurrency = Math.max(1, Math.floor(options.concurrency ?? 16));
  }

  /**
   * Stores the entries whose `uuid` the key does not hold yet (and every entry without one) as one part
   * object, after the parts already stored; updates the session summary for a main transcript; compacts
   * the key when it has more than `compactAfterParts` loose parts.
   */
  append(key: SessionKey, entries: SessionStoreEntry[]): Promise<void> {
    if (entries.length === 0) return Promise.resolve();
    const id = keyId(key);
    return this.queue.run(id, () => this.appendLocked(key, id, entries));
  }

  /** All entries of the key in append order, each uuid once; null when nothing was ever stored. */
  async load(key: SessionKey): Promise<SessionStoreEntry[] | null> {
    const read = await readKey(this.bucket, this.keyDir(key), this.concurrency);
    // The SDK loads a session before it resumes and appends to it: keep what was read for those appends.
    // A view that is stale by then is still valid to start from (the next append's listing updates it).
    const id = keyId(key);
    if (read.parts.length > 0 && !this.views.has(id) && !this.queue.busy(id)) {
      this.remember(id, viewFrom(key, read));
    }
    if (read.parts.length === 0) return null;
    const seen = new Set<string>();
    const entries: SessionStoreEntry[] = [];
    for (const part of read.parts) entries.push(...fresh(part.entries, seen));
    return entries;
  }

  /** The project's main transcripts with the epoch-ms mtime of their latest summary, from one listing. */
  async listSessions(projectKey: string): Promise<Array<{ sessionId: string; mtime: number }>> {
    const versions = await summaryVersions(this.bucket, this.root, projectKey);
    return [...versions].map(([sessionId, list]) => ({ sessionId, mtime: list[0]!.mtime }));
  }

  /** The folded summaries of the project's main transcripts; each `mtime` equals `listSessions`'s. */
  async listSessionSummaries(projectKey: string): Promise<SessionSummaryEntry[]> {
    const versions = await summaryVersions(this.bucket, this.root, projectKey);
    const found = await mapLimit([...versions], this.concurrency, async ([sessionId, list]) => {
      // The newest version may be gone (superseded and deleted) or in flight; an older one is still a
      // valid summary, just staler, and the SDK reloads a summary older than listSessions' mtime.
      for (const version of list) {
        const read = await this.bucket.getJson<SummaryBody>(version.key);
        if (read.state === 'ok') return { sessionId, mtime: read.value.mtime, data: read.value.data };
      }
      return undefined;
    });
    return found.filter((entry): entry is SessionSummaryEntry => entry !== undefined);
  }

  /**
   * Removes the key. For a main transcript also its subpaths and its summary; for a subpath only that
   * subpath. The removed uuids are forgotten: appending them again stores them again.
   */
  delete(key: SessionKey): Promise<void> {
    // Queued behind this instance's appends to the key, so that a delete called after them removes them.
    return this.queue.run(keyId(key), async () => {
      const prefix = key.subpath ? this.keyDir(key) : this.sessionDir(key);
      const objects = await this.bucket.list(prefix);
      if (!key.subpath) objects.push(...(await this.bucket.list(summaryDir(this.root, key))));
      await this.bucket.deleteMany(objects.map((object) => object.key));
      if (key.subpath) this.views.delete(keyId(key));
      else {
        const session = `${JSON.stringify([key.projectKey, key.sessionId]).slice(0, -1)},`;
        for (const id of [...this.views.keys()]) if (id.startsWith(session)) this.views.delete(id);
      }
    });
  }

  /** The subpaths (e.g. `subagents/agent-ID`) stored under the session, sorted. */
  async listSubkeys(key: { projectKey: string; sessionId: string }): Promise<string[]> {
    const dir = this.sessionDir(key);
    const subpaths = new Set<string>();
    for (const object of await this.bucket.list(dir)) {
      const components = object.key.slice(dir.length).split('/');
      if (components[0] === MAIN) continue;
      const decoded = decodeSegment(components, 0);
      if (decoded) subpaths.add(decoded.value);
    }
    return [...subpaths].sort();
  }

  /**
   * Merges every object of the key into one segment, so that the next load is one listing and one GET.
   * Appends do this incrementally on their own; call it to tidy a session that has gone quiet.
   */
  compact(key: SessionKey): Promise<void> {
    const id = keyId(key);
    return this.queue.run(id, async () => {
      const dir = this.keyDir(key);
      const view = viewFrom(key, await readKey(this.bucket, dir, this.concurrency));
      this.remember(id, view);
      await this.compactLocked(dir, view, true);
    });
  }

  private async appendLocked(key: SessionKey, id: string, entries: SessionStoreEntry[]): Promise<void> {
    const dir = this.keyDir(key);
    const main = !key.subpath;
    let view = await this.sync(key, this.views.get(id), dir, await this.bucket.list(dir));
    this.remember(id, view);

    const batch = fresh(entries, new Set(), view.uuids);
    if (batch.length === 0) {
      // A replay of what is stored; only a summary that an earlier, failed call did not write is missing.
      if (main && !view.summaryWritten && view.parts.size > 0) {
        await writeSummary(this.bucket, this.root, key, view, this.names);
        await pruneSummaries(this.bucket, this.root, key, view);
      }
      return;
    }
    // Strictly above every mtime this writer has read, even if its clock is behind another writer's.
    const mtime = Math.max(Date.now(), view.maxMtime + 1);
    const name = `p${pad(view.maxSeq + 1, 12)}-${this.names.next()}`;
    const body = JSON.stringify({ v: 1, m: mtime, e: batch } satisfies PartBody);
    await this.bucket.put(dir + name, body);
    view.objects.set(name, Buffer.byteLength(body));
    view.maxSeq += 1;
    absorb(view, { name, mtime, entries: batch }, main ? key : undefined);
    view.loose.set(name, { name, mtime, entries: batch });

    if (main) {
      // The summary of what this writer knows goes out with the listing that checks whether it knows
      // everything: listed after the part's PUT, so of all writers racing on this key, the last to list
      // sees every part. Only when that listing shows parts this writer had not folded is a second
      // version needed; one round trip instead of two in the usual case.
      const [, listing] = await Promise.all([
        writeSummary(this.bucket, this.root, key, view, this.names),
        this.bucket.list(dir),
      ]);
      view = await this.sync(key, view, dir, listing);
      this.remember(id, view);
      if (!view.summaryWritten) await writeSummary(this.bucket, this.root, key, view, this.names);
      await pruneSummaries(this.bucket, this.root, key, view);
    }
    if (view.loose.size > this.compactAfterParts) {
      try {
        await this.compactLocked(dir, view, false);
      } catch {
        // The append is stored; a failed compaction leaves extra objects that the next append merges.
      }
    }
  }

  /**
   * Brings `view` up to date with `listing`: absorbs parts it has not read when they sort after all it has,
   * and rebuilds it from a full read when that is not so, when something it read has vanished (a delete, or
   * another instance's compaction) or when a segment it has not read appears.
   */
  private async sync(
    key: SessionKey,
    view: KeyView | undefined,
    dir: string,
    listing: ListedObject[],
  ): Promise<KeyView> {
    const objects = parseListing(dir, listing);
    const rebuild = async (from?: ListedObject[]) =>
      viewFrom(key, await readKey(this.bucket, dir, this.concurrency, from));
    if (!view) return rebuild(listing);
    const listed = new Set(objects.map((object) => object.name));
    const vanished = [...view.objects.keys()].some((name) => !listed.has(name));
    const unread = objects.filter((object) => !view.objects.has(object.name));
    if (vanished || unread.some((object) => object.kind === 'segment')) return rebuild(listing);
    const reads = await mapLimit(unread, this.concurrency, (object) =>
      this.bucket.getJson<PartBody>(dir + object.name),
    );
    const parts: Array<{ part: Part; size: number }> = [];
    for (const [i, read] of reads.entries()) {
      const object = unread[i]!;
      if (read.state === 'missing') return rebuild();
      if (read.state === 'ok') {
        parts.push({
          part: { name: object.name, mtime: read.value.m, entries: read.value.e },
          size: object.size,
        });
      }
    }
    parts.sort((a, b) => (a.part.name < b.part.name ? -1 : 1));
    // A part landed before one already folded (two writers drew the same seq): fold again in order.
    if (parts.some(({ part }) => part.name < view.lastPart)) return rebuild(listing);
    for (const { part, size } of parts) {
      absorb(view, part, key.subpath ? undefined : key);
      view.objects.set(part.name, size);
      view.loose.set(part.name, part);
      view.summaryWritten = false;
    }
    for (const object of objects) view.maxSeq = Math.max(view.maxSeq, object.seq);
    return view;
  }

  private compactLocked(dir: string, view: KeyView, all: boolean): Promise<void> {
    return compactKey(this.bucket, dir, view, {
      all,
      compactAfterParts: this.compactAfterParts,
      concurrency: this.concurrency,
      names: this.names,
    });
  }

  /** Keeps the view as the most recently used, evicting the least recently used idle ones beyond the cap. */
  private remember(id: string, view: KeyView): void {
    this.views.delete(id);
    this.views.set(id, view);
    if (this.views.size <= this.cachedKeys) return;
    for (const old of this.views.keys()) {
      if (this.views.size <= this.cachedKeys) break;
      if (old !== id && !this.queue.busy(old)) this.views.delete(old);
    }
  }

  private sessionDir(key: { projectKey: string; sessionId: string }): string {
    return `${this.root}transcripts/${encodeSegment(key.projectKey)}/${encodeSegment(key.sessionId)}/`;
  }

  private keyDir(key: SessionKey): string {
    return `${this.sessionDir(key)}${key.subpath ? encodeSegment(key.subpath) : MAIN}/`;
  }
}
