/**
 * Session summaries of the S3 session store (protocol in the header of `s3/session-store.ts`):
 *
 *   summaries/<projectKey>/<sessionId>/v<parts:12>-<mtime:15>-<writer:10><n:10>
 *     a summary version, {"v":1,"mtime":..,"data":{...}}, named by how many parts it folds
 *
 * A writer writes a version after each append; the version with the most parts is the newest. Older
 * versions are deleted every few versions a writer writes, so a session keeps a handful.
 */
import { foldSessionSummary } from '@anthropic-ai/claude-agent-sdk';
import type { SessionKey } from '@anthropic-ai/claude-agent-sdk';
import type { S3Bucket } from './client.js';
import { decodeSegment, encodeSegment, pad, WRITER_ID_LENGTH } from './common.js';
import type { WriterNames } from './common.js';
import type { KeyView } from './transcript-objects.js';

export interface SummaryBody {
  v: 1;
  mtime: number;
  data: Record<string, unknown>;
}

/** One summary version as listed: its key, its mtime and its name (which sorts it). */
export interface SummaryVersion {
  key: string;
  mtime: number;
  name: string;
}

const SUMMARY_NAME = new RegExp(`^v(\\d{12})-(\\d{15})-[0-9a-z]{${WRITER_ID_LENGTH}}\\d{10}$`);
/** How many summary versions a writer writes before it deletes the older versions of the session. */
const PRUNE_SUMMARIES_AFTER = 4;

/** The directory of a session's summary versions under the store's root. */
export function summaryDir(root: string, key: { projectKey: string; sessionId: string }): string {
  return `${root}summaries/${encodeSegment(key.projectKey)}/${encodeSegment(key.sessionId)}/`;
}

/** Writes a summary version covering the view's parts (named by their count, see the header). */
export async function writeSummary(
  bucket: S3Bucket,
  root: string,
  key: SessionKey,
  view: KeyView,
  names: WriterNames,
): Promise<void> {
  const summary = view.summary ?? foldSessionSummary(undefined, key, [], { mtime: view.maxMtime });
  const mtime = view.maxMtime;
  const name = `v${pad(view.parts.size, 12)}-${pad(mtime, 15)}-${names.next()}`;
  const body = JSON.stringify({ v: 1, mtime, data: summary.data } satisfies SummaryBody);
  await bucket.put(summaryDir(root, key) + name, body);
  view.summaryWritten = true;
  view.summariesWritten++;
}

/**
 * Once this writer has written a few summary versions of the session, lists them all and deletes all but
 * the newest: readers only ever read the newest, and a listing plus a delete per append would double
 * the requests of an append. Versions that other writers add after the listing are left alone.
 */
export async function pruneSummaries(
  bucket: S3Bucket,
  root: string,
  key: SessionKey,
  view: KeyView,
): Promise<void> {
  if (view.summariesWritten < PRUNE_SUMMARIES_AFTER) return;
  view.summariesWritten = 0;
  const versions = await bucket.list(summaryDir(root, key));
  if (versions.length < 2) return;
  const newest = versions.reduce((a, b) => (a.key > b.key ? a : b));
  await bucket.deleteMany(versions.filter((v) => v !== newest).map((v) => v.key));
}

/** Summary versions of the project's sessions, by session id, newest first per session. */
export async function summaryVersions(
  bucket: S3Bucket,
  root: string,
  projectKey: string,
): Promise<Map<string, SummaryVersion[]>> {
  const dir = `${root}summaries/${encodeSegment(projectKey)}/`;
  const bySession = new Map<string, SummaryVersion[]>();
  for (const object of await bucket.list(dir)) {
    const components = object.key.slice(dir.length).split('/');
    const session = decodeSegment(components, 0);
    const name = session && components.length === session.next + 1 ? components[session.next]! : '';
    const match = SUMMARY_NAME.exec(name);
    if (!session || !match) continue;
    const list = bySession.get(session.value) ?? [];
    list.push({ key: object.key, mtime: Number(match[2]), name });
    bySession.set(session.value, list);
  }
  for (const list of bySession.values())
    list.sort((a, b) => (a.name < b.name ? 1 : a.name > b.name ? -1 : 0));
  return bySession;
}
