/** Reading a session's transcript both ways: the CLI's local JSONL file, and what a store holds. */
import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import { expect } from 'vitest';
import { canonicalJson } from '../../src/stores/canonical-json.js';
import { LOCAL_ONLY_TYPES } from '../../src/stores/reconcile.js';

/**
 * The local JSONL transcript of an SDK session under a Berth data dir (tenant `default` unless given),
 * without the line types the SDK keeps local.
 */
export async function localTranscript(
  dataDir: string,
  sdkSessionId?: string,
  tenant = 'default',
): Promise<{ sdkSessionId: string; entries: SessionStoreEntry[] }> {
  const projects = path.join(dataDir, 'tenants', tenant, 'claude-config', 'projects');
  for (const project of await readdir(projects)) {
    const files = (await readdir(path.join(projects, project))).filter(
      (f) => f.endsWith('.jsonl') && (sdkSessionId === undefined || f === `${sdkSessionId}.jsonl`),
    );
    const [file] = files;
    if (!file) continue;
    const entries = (await readFile(path.join(projects, project, file), 'utf8'))
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => JSON.parse(line) as SessionStoreEntry)
      // What the SDK never mirrors is not expected in a store.
      .filter((entry) => !LOCAL_ONLY_TYPES.has(entry.type));
    return { sdkSessionId: file.replace(/\.jsonl$/, ''), entries };
  }
  throw new Error(`no local transcript under ${projects}`);
}

/** A short, comparable name for an entry: its type, uuid and a hash of its canonical JSON. */
function fingerprint(entry: unknown): string {
  const e = entry as { type?: string; uuid?: string };
  const hash = createHash('sha256').update(canonicalJson(entry)).digest('hex').slice(0, 10);
  return `${e.type ?? '?'}:${e.uuid?.slice(0, 8) ?? '-'}:${hash}`;
}

/**
 * Entry for entry: the same entries (as a multiset), and the conversation's entries (those with a uuid)
 * in the same order. The SDK mirrors some bookkeeping lines (`ai-title`, `last-prompt`, ...) at other
 * moments than the CLI writes them, so their positions differ even when nothing failed. Failures show
 * fingerprints, not the (very large) entries.
 */
export function expectSameTranscript(stored: readonly unknown[], local: readonly unknown[]): void {
  const uuids = (l: readonly unknown[]) => l.map((e) => (e as { uuid?: string }).uuid).filter(Boolean);
  expect(uuids(stored)).toEqual(uuids(local));
  expect(stored.map(fingerprint).sort()).toEqual(local.map(fingerprint).sort());
}
