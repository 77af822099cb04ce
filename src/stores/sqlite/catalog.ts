/**
 * The catalog on the embedded SQLite database (table `catalog`, see `sqlite/database.ts`).
 */
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
import { migrateSqliteDatabase, sqliteTask } from './database.js';
import type { SqliteDatabase } from './database.js';

/** Options of {@link SqliteCatalog}. */
export interface SqliteCatalogOptions {
  /** An open connection, e.g. from `openSqliteDatabase`; the catalog never closes it. */
  db: SqliteDatabase;
}

interface CatalogRow {
  tenant: string;
  kind: string;
  id: string;
  revision: number;
  created_at: number;
  updated_at: number;
  doc: string;
}

/**
 * Catalog entries in SQLite. `replace` is one `UPDATE ... WHERE revision = ?`, so the compare-and-set holds
 * across connections and processes on one file; `list` pages newest first with a keyset cursor on
 * (createdAt, id).
 */
export class SqliteCatalog implements Catalog {
  private readonly db: SqliteDatabase;
  private readonly sql: ReturnType<typeof prepareStatements>;

  constructor(options: SqliteCatalogOptions) {
    this.db = options.db;
    migrateSqliteDatabase(this.db);
    this.sql = prepareStatements(this.db);
  }

  create(entry: NewCatalogEntry, options?: StoreCallOptions): Promise<CatalogEntry> {
    return sqliteTask(
      this.db,
      'create catalog entry',
      () => {
        checkNewCatalogEntry(entry);
        const row = toRow({ ...entry, revision: 1, updatedAt: Date.now() });
        if (this.sql.insert.run(row).changes === 0) throw resourceExists(entry);
        // What get will return: the doc as JSON keeps it, nothing else the caller's object carried.
        return fromRow(row);
      },
      options?.signal,
    );
  }

  get(ref: CatalogRef, options?: StoreCallOptions): Promise<CatalogEntry | undefined> {
    return sqliteTask(
      this.db,
      'get catalog entry',
      () => {
        const row = this.sql.select.get(ref.tenant, ref.kind, ref.id);
        return row && fromRow(row);
      },
      options?.signal,
    );
  }

  replace(
    ref: CatalogRef,
    doc: Record<string, unknown>,
    expectRevision: number,
    options?: StoreCallOptions,
  ): Promise<CatalogEntry | undefined> {
    return sqliteTask(
      this.db,
      'replace catalog entry',
      () => {
        checkCatalogDoc(doc);
        checkExpectedRevision(expectRevision);
        const row = this.sql.replace.get({
          tenant: ref.tenant,
          kind: ref.kind,
          id: ref.id,
          expect: expectRevision,
          doc: JSON.stringify(doc),
          now: Date.now(),
        });
        if (row) return fromRow(row);
        // Only to tell the two refusals apart; the update above already changed nothing.
        const current = this.sql.select.get(ref.tenant, ref.kind, ref.id);
        if (!current) return undefined;
        throw revisionConflict(ref, expectRevision, current.revision);
      },
      options?.signal,
    );
  }

  list(tenant: string, kind: CatalogKind, options: CatalogListOptions): Promise<ListPage<CatalogEntry>> {
    return sqliteTask(
      this.db,
      'list catalog entries',
      () => {
        const { limit, cursor } = options;
        checkCatalogKind(kind);
        checkPageLimit(limit);
        const after = cursor === undefined ? undefined : decodeCursor(cursor);
        const params = { tenant, kind, limit: limit + 1, prefix: options.idPrefix ?? '' };
        const rows = after
          ? this.sql.listAfter.all({ ...params, createdAt: after.createdAt, id: after.id })
          : this.sql.listFirst.all(params);
        return catalogPage(rows.map(fromRow), limit);
      },
      options.signal,
    );
  }

  delete(ref: CatalogRef, options?: StoreCallOptions): Promise<void> {
    return sqliteTask(
      this.db,
      'delete catalog entry',
      () => {
        this.sql.delete.run(ref.tenant, ref.kind, ref.id);
      },
      options?.signal,
    );
  }
}

const COLUMNS = 'tenant, kind, id, revision, created_at, updated_at, doc';

/** `@prefix` '' keeps every id: substr(id, 1, 0) is ''. */
const PREFIXED = 'substr(id, 1, length(@prefix)) = @prefix';

interface ListParams {
  tenant: string;
  kind: string;
  limit: number;
  prefix: string;
}

function prepareStatements(db: SqliteDatabase) {
  return {
    insert: db.prepare<CatalogRow>(
      `INSERT INTO catalog (${COLUMNS}) VALUES (@tenant, @kind, @id, @revision, @created_at, @updated_at, @doc)
       ON CONFLICT (tenant, kind, id) DO NOTHING`,
    ),
    select: db.prepare<[string, string, string], CatalogRow>(
      `SELECT ${COLUMNS} FROM catalog WHERE tenant = ? AND kind = ? AND id = ?`,
    ),
    replace: db.prepare<
      { tenant: string; kind: string; id: string; expect: number; doc: string; now: number },
      CatalogRow
    >(
      `UPDATE catalog SET doc = @doc, revision = revision + 1, updated_at = @now
       WHERE tenant = @tenant AND kind = @kind AND id = @id AND revision = @expect
       RETURNING ${COLUMNS}`,
    ),
    listFirst: db.prepare<ListParams, CatalogRow>(
      `SELECT ${COLUMNS} FROM catalog WHERE tenant = @tenant AND kind = @kind AND ${PREFIXED}
       ORDER BY created_at DESC, id DESC LIMIT @limit`,
    ),
    listAfter: db.prepare<ListParams & { createdAt: number; id: string }, CatalogRow>(
      `SELECT ${COLUMNS} FROM catalog WHERE tenant = @tenant AND kind = @kind AND ${PREFIXED}
       AND (created_at, id) < (@createdAt, @id) ORDER BY created_at DESC, id DESC LIMIT @limit`,
    ),
    delete: db.prepare<[string, string, string]>(
      'DELETE FROM catalog WHERE tenant = ? AND kind = ? AND id = ?',
    ),
  };
}

function toRow(entry: CatalogEntry): CatalogRow {
  return {
    tenant: entry.tenant,
    kind: entry.kind,
    id: entry.id,
    revision: entry.revision,
    created_at: entry.createdAt,
    updated_at: entry.updatedAt,
    doc: JSON.stringify(entry.doc),
  };
}

function fromRow(row: CatalogRow): CatalogEntry {
  return {
    tenant: row.tenant,
    kind: row.kind as CatalogKind,
    id: row.id,
    revision: row.revision,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    doc: JSON.parse(row.doc) as Record<string, unknown>,
  };
}
