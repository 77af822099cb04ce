/**
 * A view of a SessionStore in which every key belongs to one tenant.
 *
 * The SDK derives a transcript's projectKey from the session's cwd, so the same session would get a
 * different key on a host whose data dir lives elsewhere, and resume there would find nothing. Berth
 * replaces the projectKey with the tenant: stable across hosts, and one tenant's keys can never name
 * another tenant's transcripts.
 */
import type { SessionKey, SessionStore } from '@anthropic-ai/claude-agent-sdk';
import type { CompleteSessionStore } from './types.js';

/** `store` seen by `tenant`; it has the optional methods `store` has (all of them, for a complete store). */
export function scopeTranscriptStore(store: CompleteSessionStore, tenant: string): CompleteSessionStore;
export function scopeTranscriptStore(store: SessionStore, tenant: string): SessionStore;
export function scopeTranscriptStore(store: SessionStore, tenant: string): SessionStore {
  const scoped = (key: SessionKey): SessionKey => ({ ...key, projectKey: tenant });
  const view: SessionStore = {
    append: (key, entries) => store.append(scoped(key), entries),
    load: (key) => store.load(scoped(key)),
  };
  if (store.listSessions) {
    const listSessions = store.listSessions.bind(store);
    view.listSessions = () => listSessions(tenant);
  }
  if (store.listSessionSummaries) {
    const listSessionSummaries = store.listSessionSummaries.bind(store);
    view.listSessionSummaries = () => listSessionSummaries(tenant);
  }
  if (store.delete) {
    const del = store.delete.bind(store);
    view.delete = (key) => del(scoped(key));
  }
  if (store.listSubkeys) {
    const listSubkeys = store.listSubkeys.bind(store);
    view.listSubkeys = (key) => listSubkeys({ ...key, projectKey: tenant });
  }
  return view;
}
