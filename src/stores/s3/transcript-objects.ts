/**
 * The objects of one transcript key of the S3 session store (layout and protocol in the header of
 * `s3/session-store.ts`): parts and segments, their names and bodies; what one store instance knows about
 * a key (a {@link KeyView}); and a full read of a key, which merges parts by name so that a part held
 * twice (in a segment and loose, or in two segments) counts once.
 */
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey, SessionStoreEntry, SessionSummaryEntry } from '@anthropic-ai/claude-agent-sdk';
import { BerthError } from '../../errors.js';
import type { ListedObject, S3Bucket } from './client.js';
import { mapLimit, WRITER_ID_LENGTH } from './common.js';

/** One append's entries, as stored in a part or a segment. */
export interface Part {
  /** The part's object name, which is its place in the transcript. */
  name: string;
  /** Epoch ms stamped by its writer. */
  mtime: number;
  entries: SessionStoreEntry[];
}

export interface PartBody {
  v: 1;
  m: number;
  e: SessionStoreEntry[];
}

export interface SegmentBody {
  v: 1;
  parts: Array<{ n: string; m: number; e: SessionStoreEntry[] }>;
}

/** An object of a key's directory, recognised by its name. */
export interface KeyObject {
  name: string;
  kind: 'part' | 'segment';
  seq: number;
  size: number;
}

/**
 * What one instance knows about one key: the parts it has read (by name), the uuids they hold, and the
 * summary folded over them in name order. Valid while every object it was built from is still listed and
 * no segment it has not read appears; otherwise it is rebuilt from a full read.
 */
export interface KeyView {
  /** Objects (parts and segments) whose content is reflected here, with their sizes. */
  objects: Map<string, number>;
  /** Names of the parts absorbed. */
  parts: Set<string>;
  /** The greatest part name absorbed (`''` when none). */
  lastPart: string;
  /** The greatest seq in any name listed, read or not: the next part's seq is one above. */
  maxSeq: number;
  maxMtime: number;
  uuids: Set<string>;
  summary: SessionSummaryEntry | undefined;
  /** Contents of the loose parts absorbed, for compaction. */
  loose: Map<string, Part>;
  /** True when a summary version covering exactly `parts` has been written by this instance. */
  summaryWritten: boolean;
  /** Summary versions written since the last pruning. */
  summariesWritten: number;
}

/** What a full read of a key found. */
export interface KeyRead {
  /** Every part, by name, in name order. */
  parts: Part[];
  /** The objects read (partial ones left out), with sizes. */
  objects: Map<string, number>;
  loose: Map<string, Part>;
  maxSeq: number;
}

export const PART_NAME = new RegExp(`^p(\\d{12})-[0-9a-z]{${WRITER_ID_LENGTH}}\\d{10}$`);
export const SEGMENT_NAME = new RegExp(`^c(\\d{12})-[0-9a-z]{${WRITER_ID_LENGTH}}\\d{10}$`);
/** The main transcript's directory name; `@` never appears in an encoded subpath. */
export const MAIN = '@';
/** Full reads retry this often when objects vanish under them (a compaction deleting what it merged). */
const READ_ATTEMPTS = 8;

/** The key's identity inside this process (its three parts, unambiguously joined). */
export function keyId(key: SessionKey): string {
  return JSON.stringify([key.projectKey, key.sessionId, key.subpath ?? '']);
}

/** Orders part and object names bytewise, as S3 lists them. */
export function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * The entries of `entries` whose uuid is neither in `seen` nor in `stored` (adding them to `seen`), and
 * every entry without a uuid.
 */
export function fresh(
  entries: readonly SessionStoreEntry[],
  seen: Set<string>,
  stored?: ReadonlySet<string>,
): SessionStoreEntry[] {
  const out: SessionStoreEntry[] = [];
  for (const entry of entries) {
    const uuid = typeof entry.uuid === 'string' ? entry.uuid : undefined;
    if (uuid !== undefined) {
      if (seen.has(uuid) || stored?.has(uuid)) continue;
      seen.add(uuid);
    }
    out.push(entry);
  }
  return out;
}

/** Folds `part` into `view`, which must not hold a part sorting after it; `main` for a main transcript. */
export function absorb(view: KeyView, part: Part, main: SessionKey | undefined): void {
  if (view.parts.has(part.name)) return;
  const entries = fresh(part.entries, view.uuids);
  view.parts.add(part.name);
  if (part.name > view.lastPart) view.lastPart = part.name;
  view.maxMtime = Math.max(view.maxMtime, part.mtime);
  if (main) view.summary = foldSessionSummary(view.summary, main, entries, { mtime: view.maxMtime });
  view.summaryWritten = false;
}

/** A view of everything `read` holds. */
export function viewFrom(key: SessionKey, read: KeyRead): KeyView {
  const view: KeyView = {
    objects: read.objects,
    parts: new Set(),
    lastPart: '',
    maxSeq: read.maxSeq,
    maxMtime: 0,
    uuids: new Set(),
    summary: undefined,
    loose: read.loose,
    summaryWritten: false,
    summariesWritten: 0,
  };
  for (const part of read.parts) absorb(view, part, key.subpath ? undefined : key);
  return view;
}

/** The parts and segments of a key's listing (anything else under the directory is ignored). */
export function parseListing(dir: string, listing: readonly ListedObject[]): KeyObject[] {
  const objects: KeyObject[] = [];
  for (const object of listing) {
    const name = object.key.slice(dir.length);
    const part = PART_NAME.exec(name);
    if (part) {
      objects.push({ name, kind: 'part', seq: Number(part[1]), size: object.size });
      continue;
    }
    const segment = SEGMENT_NAME.exec(name);
    if (segment) objects.push({ name, kind: 'segment', seq: Number(segment[1]), size: object.size });
  }
  return objects;
}

/** The parts an object holds; `missing` when it is gone, `partial` when its body is still being written. */
export async function readObject(
  bucket: S3Bucket,
  dir: string,
  object: KeyObject,
): Promise<Part[] | 'partial' | 'missing'> {
  if (object.kind === 'part') {
    const read = await bucket.getJson<PartBody>(dir + object.name);
    if (read.state !== 'ok') return read.state;
    return [{ name: object.name, mtime: read.value.m, entries: read.value.e }];
  }
  const read = await bucket.getJson<SegmentBody>(dir + object.name);
  if (read.state !== 'ok') return read.state;
  return read.value.parts.map((part) => ({ name: part.n, mtime: part.m, entries: part.e }));
}

/**
 * Reads every object of the key in `dir` (starting from `listing` when given), `concurrency` GETs at a
 * time, retrying with a fresh listing when an object vanishes between the listing and its GET.
 */
export async function readKey(
  bucket: S3Bucket,
  dir: string,
  concurrency: number,
  listing?: ListedObject[],
): Promise<KeyRead> {
  const cache = new Map<string, Part[] | 'partial'>();
  for (let attempt = 0; attempt < READ_ATTEMPTS; attempt++) {
    const current = attempt === 0 && listing ? listing : await bucket.list(dir);
    const objects = parseListing(dir, current);
    let vanished = false;
    await mapLimit(
      objects.filter((object) => !cache.has(object.name)),
      concurrency,
      async (object) => {
        const parts = await readObject(bucket, dir, object);
        if (parts === 'missing') vanished = true;
        else cache.set(object.name, parts);
      },
    );
    if (vanished) continue;
    const byPartName = new Map<string, Part>();
    const read: KeyRead = { parts: [], objects: new Map(), loose: new Map(), maxSeq: 0 };
    for (const object of objects) {
      read.maxSeq = Math.max(read.maxSeq, object.seq);
      const parts = cache.get(object.name);
      if (parts === undefined || parts === 'partial') continue;
      read.objects.set(object.name, object.size);
      for (const part of parts) byPartName.set(part.name, part);
      if (object.kind === 'part' && parts[0]) read.loose.set(object.name, parts[0]);
    }
    read.parts = [...byPartName.values()].sort((a, b) => byName(a.name, b.name));
    return read;
  }
  throw new BerthError(
    'store_unavailable',
    `s3 load s3://${bucket.name}/${dir} failed: its objects kept vanishing while being read`,
  );
}
