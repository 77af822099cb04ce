/**
 * Puts into the store what a subprocess wrote to its local transcript but the SDK never mirrored.
 *
 * The CLI writes each transcript line to `CLAUDE_CONFIG_DIR/projects/<cwd, sanitised>/<session>.jsonl`
 * and the SDK, in the host process, mirrors lines to the store in batches. A host killed between the two
 * loses the batch in flight; the file still has it. A host that finds a session which was mid-turn when its
 * previous host died calls this before the session runs again.
 */
import { access, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { SessionKey, SessionStore, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { canonicalJson } from './canonical-json.js';

/**
 * Line types the CLI writes to its local transcript that the SDK's mirror never sends to a store (seen
 * with SDK 0.3.330: request shapes and blobs, which repeat the whole system prompt and tool list). They
 * stay local; reconciling must not add them either.
 */
export const LOCAL_ONLY_TYPES: ReadonlySet<string> = new Set([
  'api-request',
  'api-request-shape',
  'api-request-blob',
]);

/** The local transcript of an SDK session under a config dir, if this host has one. */
export async function findLocalTranscript(
  configDir: string,
  sdkSessionId: string,
): Promise<string | undefined> {
  const projects = path.join(configDir, 'projects');
  let dirs: string[];
  try {
    dirs = await readdir(projects);
  } catch {
    return undefined;
  }
  for (const dir of dirs) {
    const file = path.join(projects, dir, `${sdkSessionId}.jsonl`);
    try {
      await access(file);
      return file;
    } catch {
      // not in this project dir
    }
  }
  return undefined;
}

/**
 * Appends, in file order, the lines of `file` that the store does not hold: an entry with a `uuid` when
 * the store lacks that uuid, an entry without one when the store holds fewer identical entries than the
 * file. Returns how many entries it appended. Unparsable lines (a line cut by the crash) are skipped.
 */
export async function reconcileTranscript(
  file: string,
  store: SessionStore,
  key: SessionKey,
): Promise<number> {
  const local: SessionStoreEntry[] = [];
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    if (line.trim() === '') continue;
    try {
      const entry = JSON.parse(line) as SessionStoreEntry;
      if (
        entry &&
        typeof entry === 'object' &&
        typeof entry.type === 'string' &&
        !LOCAL_ONLY_TYPES.has(entry.type)
      ) {
        local.push(entry);
      }
    } catch {
      // a torn last line
    }
  }
  const stored = (await store.load(key)) ?? [];
  const uuids = new Set(stored.map((e) => e.uuid).filter((u): u is string => typeof u === 'string'));
  const withoutUuid = new Map<string, number>();
  for (const e of stored) {
    if (typeof e.uuid === 'string') continue;
    const text = canonicalJson(e);
    withoutUuid.set(text, (withoutUuid.get(text) ?? 0) + 1);
  }
  const missing = local.filter((e) => {
    if (typeof e.uuid === 'string') return !uuids.has(e.uuid);
    const text = canonicalJson(e);
    const count = withoutUuid.get(text) ?? 0;
    if (count > 0) {
      withoutUuid.set(text, count - 1);
      return false;
    }
    return true;
  });
  if (missing.length > 0) await store.append(key, missing);
  return missing.length;
}
