/**
 * The catalog: where Berth keeps the Managed Agents API resources that outlive a session, agents (each
 * version an entry of its own, id `<agentId>@<version>`) and environments. One entry per (tenant, kind,
 * id); the store keeps the API resource as an opaque JSON document with a revision for compare-and-set,
 * so that two hosts updating one agent at once cannot both win. Every `--store` backend has one, next to
 * the session registry (`Stores.catalog`).
 *
 * This module holds the interface and the checks every backend shares; it imports nothing from
 * `types.ts`, which imports it.
 */
import { BerthError } from '../errors.js';
import type { StoreCallOptions } from './call-options.js';
import { encodeCursor, MAX_CREATED_AT } from './list-cursor.js';
import type { ListPage } from './list-cursor.js';

export const CATALOG_KINDS = ['agent', 'agent_version', 'environment'] as const;
export type CatalogKind = (typeof CATALOG_KINDS)[number];

/**
 * Names one entry. Ids are unique per tenant and kind, not globally: the same id in two tenants is two
 * entries, and a tenant never learns from a conflict that another tenant uses an id. The API layer keeps
 * ids to `^[A-Za-z0-9][A-Za-z0-9_@.-]{0,127}$`; the stores work with any string.
 */
export interface CatalogRef {
  tenant: string;
  kind: CatalogKind;
  id: string;
}

export interface CatalogEntry {
  tenant: string;
  kind: CatalogKind;
  id: string;
  /** 1 when created; +1 at each replace. */
  revision: number;
  /** Epoch ms, set by the caller at create; kept across replaces. */
  createdAt: number;
  /** Epoch ms, set by the store at create and each replace (`Date.now()` of the writing process). */
  updatedAt: number;
  /** A JSON object (the API resource); the store does not look inside. */
  doc: Record<string, unknown>;
}

/** What {@link Catalog.create} takes: everything but what the store sets. */
export type NewCatalogEntry = Omit<CatalogEntry, 'revision' | 'updatedAt'>;

/** Options of {@link Catalog.list}. */
export interface CatalogListOptions extends StoreCallOptions {
  /** Entries per page, a positive integer. */
  limit: number;
  /** The `next` of the previous page; absent for the first. */
  cursor?: string | undefined;
  /** Keeps only ids that start with it (one agent's versions: `<agentId>@`). */
  idPrefix?: string | undefined;
}

export interface Catalog {
  /**
   * Stores a new entry at revision 1 and returns it. Throws `BerthError('resource_exists')` when the
   * tenant already has that kind and id (or, on S3, another process is creating it at this moment), and
   * changes nothing then; `invalid_request` for an unknown kind, a createdAt that is not epoch ms (up to
   * 15 digits, as a cursor holds) or a doc that is not an object.
   */
  create(entry: NewCatalogEntry, options?: StoreCallOptions): Promise<CatalogEntry>;
  /** The entry, or undefined. */
  get(ref: CatalogRef, options?: StoreCallOptions): Promise<CatalogEntry | undefined>;
  /**
   * Replaces the doc when the stored revision is `expectRevision` (compare-and-set) and returns the entry
   * at revision + 1, `createdAt` kept, `updatedAt` now. Throws `BerthError('revision_conflict')` and changes
   * nothing when the revision differs (or, on S3, another process is replacing the entry at this moment:
   * two racing replaces may both be refused, never both accepted). Returns undefined when there is no such
   * entry. Throws `invalid_request` when `expectRevision` is not a positive integer or `doc` not an object.
   */
  replace(
    ref: CatalogRef,
    doc: Record<string, unknown>,
    expectRevision: number,
    options?: StoreCallOptions,
  ): Promise<CatalogEntry | undefined>;
  /**
   * The tenant's entries of one kind, newest first (`createdAt` descending, then id descending), in pages
   * of `limit` with an opaque cursor (the registry's, `list-cursor.ts`): pages neither skip nor repeat
   * entries when entries are created or deleted between them. Throws `invalid_request` for a cursor the
   * store did not produce or a limit that is not a positive integer.
   */
  list(tenant: string, kind: CatalogKind, options: CatalogListOptions): Promise<ListPage<CatalogEntry>>;
  /** Removes the entry; a no-op when there is none. */
  delete(ref: CatalogRef, options?: StoreCallOptions): Promise<void>;
}

/** `invalid_request` unless `kind` is one of {@link CATALOG_KINDS} (it becomes part of keys and paths). */
export function checkCatalogKind(kind: string): CatalogKind {
  if (!(CATALOG_KINDS as readonly string[]).includes(kind)) {
    throw new BerthError('invalid_request', `unknown catalog kind ${JSON.stringify(kind)}`);
  }
  return kind as CatalogKind;
}

/** `invalid_request` unless `doc` is a JSON object (not an array, not null). */
export function checkCatalogDoc(doc: unknown): Record<string, unknown> {
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) {
    throw new BerthError('invalid_request', 'a catalog doc must be a JSON object');
  }
  return doc as Record<string, unknown>;
}

/** `invalid_request` unless `revision` is a positive safe integer: anything else is a caller's bug. */
export function checkExpectedRevision(revision: number): void {
  if (!Number.isSafeInteger(revision) || revision < 1) {
    throw new BerthError('invalid_request', `a revision is a positive integer, got ${revision}`);
  }
}

/** Checks what every backend relies on in a new entry: its kind, its createdAt and its doc. */
export function checkNewCatalogEntry(entry: NewCatalogEntry): void {
  checkCatalogKind(entry.kind);
  if (!Number.isSafeInteger(entry.createdAt) || entry.createdAt < 0 || entry.createdAt > MAX_CREATED_AT) {
    throw new BerthError('invalid_request', `createdAt must be epoch milliseconds, got ${entry.createdAt}`);
  }
  checkCatalogDoc(entry.doc);
}

/**
 * A page from up to `limit + 1` entries in list order: the extra one only says that another page exists,
 * so that no backend needs a count.
 */
export function catalogPage(entries: readonly CatalogEntry[], limit: number): ListPage<CatalogEntry> {
  const data = entries.slice(0, limit);
  const last = data.at(-1);
  const next =
    entries.length > limit && last ? encodeCursor({ createdAt: last.createdAt, id: last.id }) : null;
  return { data, next };
}

/** The `revision_conflict` of a replace whose expected revision is not the stored one. */
export function revisionConflict(ref: CatalogRef, expected: number, found?: number): BerthError {
  const now = found === undefined ? '' : ` (it is ${found})`;
  return new BerthError(
    'revision_conflict',
    `${ref.kind} ${ref.id} is not at revision ${expected}${now}; read it again and retry`,
  );
}

/** The `resource_exists` of a create whose id is taken. */
export function resourceExists(entry: Pick<CatalogRef, 'kind' | 'id'>): BerthError {
  return new BerthError('resource_exists', `${entry.kind} ${entry.id} already exists`);
}
