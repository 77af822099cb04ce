/**
 * The catalog on PostgreSQL (table `catalog`, see `postgres/schema.ts`).
 */
import type { Pool } from 'pg';
import {
  catalogPage,
  checkCatalogDoc,
  checkCatalogKind,
  checkExpectedRevision,
  checkNewCatalogEntry,
  resourceExists,
  revisionConflict,
} from '../catalog.js';
import type {
  Catalog,
  CatalogEntry,
  CatalogKind,
  CatalogListOptions,
  CatalogRef,
  NewCatalogEntry,
} from '../catalog.js';
import type { StoreCallOptions } from '../call-options.js';
import { checkPageLimit, decodeCursor } from '../list-cursor.js';
import type { ListPage } from '../list-cursor.js';
import { DEFAULT_POSTGRES_SCHEMA, ensurePostgresSchema, pgTask, quoteSchema } from './schema.js';
import type { PostgresStoreOptions } from './schema.js';

/** Options of {@link PostgresCatalog}. */
export type PostgresCatalogOptions = PostgresStoreOptions;

interface CatalogRow {
  tenant: string;
  kind: string;
  id: string;
  /** bigints, which `pg` returns as strings. */
  revision: string;
  created_at: string;
  updated_at: string;
  doc: string;
}

/**
 * Catalog entries in PostgreSQL. `replace` is one `UPDATE ... WHERE revision = $n RETURNING`: the row lock
 * it takes makes concurrent replaces from any number of pools queue up, and only the first finds the
 * revision it expects. `list` pages newest first with a keyset cursor on (createdAt, id).
 */
export class PostgresCatalog implements Catalog {
  private readonly pool: Pool;
  private readonly schema: string;
  private readonly sql: ReturnType<typeof sqlTexts>;

  constructor(options: PostgresCatalogOptions) {
    this.pool = options.pool;
    this.schema = options.schema ?? DEFAULT_POSTGRES_SCHEMA;
    this.sql = sqlTexts(`${quoteSchema(this.schema)}.catalog`);
  }

  async create(entry: NewCatalogEntry, options?: StoreCallOptions): Promise<CatalogEntry> {
    checkNewCatalogEntry(entry);
    await this.ready(options?.signal);
    const values = [
      entry.tenant,
      entry.kind,
      entry.id,
      entry.createdAt,
      Date.now(),
      JSON.stringify(entry.doc),
    ];
    const result = await pgTask(
      'create catalog entry',
      () => this.pool.query<CatalogRow>(this.sql.insert, values),
      options?.signal,
    );
    const row = result.rows[0];
    if (!row) throw resourceExists(entry);
    return fromRow(row);
  }

  async get(ref: CatalogRef, options?: StoreCallOptions): Promise<CatalogEntry | undefined> {
    await this.ready(options?.signal);
    const result = await pgTask(
      'get catalog entry',
      () => this.pool.query<CatalogRow>(this.sql.select, [ref.tenant, ref.kind, ref.id]),
      options?.signal,
    );
    const row = result.rows[0];
    return row && fromRow(row);
  }

  async replace(
    ref: CatalogRef,
    doc: Record<string, unknown>,
    expectRevision: number,
    options?: StoreCallOptions,
  ): Promise<CatalogEntry | undefined> {
    checkCatalogDoc(doc);
    checkExpectedRevision(expectRevision);
    await this.ready(options?.signal);
    const values = [ref.tenant, ref.kind, ref.id, expectRevision, JSON.stringify(doc), Date.now()];
    const result = await pgTask(
      'replace catalog entry',
      () => this.pool.query<CatalogRow>(this.sql.replace, values),
      options?.signal,
    );
    const row = result.rows[0];
    if (row) return fromRow(row);
    // Only to tell the two refusals apart; the update already changed nothing.
    const current = await this.get(ref, options);
    if (!current) return undefined;
    throw revisionConflict(ref, expectRevision, current.revision);
  }

  async list(
    tenant: string,
    kind: CatalogKind,
    options: CatalogListOptions,
  ): Promise<ListPage<CatalogEntry>> {
    const { limit, cursor, signal } = options;
    checkCatalogKind(kind);
    checkPageLimit(limit);
    const after = cursor === undefined ? undefined : decodeCursor(cursor);
    await this.ready(signal);
    // One extra row tells whether another page exists without a count query.
    const values = [tenant, kind, limit + 1, options.idPrefix ?? ''];
    const result = await pgTask(
      'list catalog entries',
      () =>
        after
          ? this.pool.query<CatalogRow>(this.sql.listAfter, [...values, after.createdAt, after.id])
          : this.pool.query<CatalogRow>(this.sql.listFirst, values),
      signal,
    );
    return catalogPage(result.rows.map(fromRow), limit);
  }

  async delete(ref: CatalogRef, options?: StoreCallOptions): Promise<void> {
    await this.ready(options?.signal);
    await pgTask(
      'delete catalog entry',
      () => this.pool.query(this.sql.delete, [ref.tenant, ref.kind, ref.id]),
      options?.signal,
    );
  }

  private ready(signal: AbortSignal | undefined): Promise<void> {
    return pgTask('migrate', () => ensurePostgresSchema(this.pool, this.schema), signal);
  }
}

/** The `json` doc as text, parsed by the store, so that type parsers set globally on `pg` change nothing. */
const SELECTED = 'tenant, kind, id, revision, created_at, updated_at, doc::text AS doc';

function sqlTexts(table: string) {
  // `starts_with(id, '')` is true: no idPrefix keeps every id.
  const listed = `SELECT ${SELECTED} FROM ${table} WHERE tenant = $1 AND kind = $2 AND starts_with(id, $4)`;
  return {
    insert: `INSERT INTO ${table} (tenant, kind, id, revision, created_at, updated_at, doc)
      VALUES ($1, $2, $3, 1, $4, $5, $6) ON CONFLICT (tenant, kind, id) DO NOTHING RETURNING ${SELECTED}`,
    select: `SELECT ${SELECTED} FROM ${table} WHERE tenant = $1 AND kind = $2 AND id = $3`,
    replace: `UPDATE ${table} SET doc = $5, revision = revision + 1, updated_at = $6
      WHERE tenant = $1 AND kind = $2 AND id = $3 AND revision = $4 RETURNING ${SELECTED}`,
    listFirst: `${listed} ORDER BY created_at DESC, id DESC LIMIT $3`,
    listAfter: `${listed} AND (created_at, id) < ($5, $6) ORDER BY created_at DESC, id DESC LIMIT $3`,
    delete: `DELETE FROM ${table} WHERE tenant = $1 AND kind = $2 AND id = $3`,
  };
}

function fromRow(row: CatalogRow): CatalogEntry {
  return {
    tenant: row.tenant,
    kind: row.kind as CatalogKind,
    id: row.id,
    revision: Number(row.revision),
    createdAt: Number(row.created_at),
    updatedAt: Number(row.updated_at),
    doc: JSON.parse(row.doc) as Record<string, unknown>,
  };
}
