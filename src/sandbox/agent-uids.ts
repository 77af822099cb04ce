/**
 * The uid each tenant's agents run as (`--agent-uids START-END`): one per tenant, never 0, never the
 * server's, so an agent owns only what its tenant's agents made, and one tenant's files are not another's
 * (even where a mount would let it see them).
 *
 * A tenant keeps its uid for the life of the data dir: the table is `agent-uids.json` there, written
 * before the first process runs as a new uid. Uids are given in order from START; a range that runs out
 * refuses new tenants (`host_full` would be a lie: it says `invalid_config`, naming the flag).
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { BerthError } from '../errors.js';

export interface UidRange {
  start: number;
  end: number;
}

/** Where the range starts when none is given: above the uids distributions give to people and services. */
export const DEFAULT_AGENT_UIDS: UidRange = { start: 100_000, end: 199_999 };

/** The most a uid can be and still be given to a file on every filesystem (2^31 - 2). */
const MAX_UID = 2 ** 31 - 2;

/** Parses `START-END` for `--agent-uids`. */
export function parseUidRange(spec: string): UidRange {
  const match = /^(\d{1,10})-(\d{1,10})$/.exec(spec.trim());
  const start = Number(match?.[1]);
  const end = Number(match?.[2]);
  if (!match || start < 1 || end < start || end > MAX_UID) {
    throw new BerthError(
      'invalid_config',
      `--agent-uids: ${JSON.stringify(spec)} is not START-END with 1 <= START <= END <= ${MAX_UID}`,
    );
  }
  return { start, end };
}

export class AgentUids {
  private readonly byTenant: Map<string, number>;
  private readonly file: string;

  constructor(
    dataDir: string,
    private readonly range: UidRange,
  ) {
    this.file = path.join(dataDir, 'agent-uids.json');
    this.byTenant = new Map(Object.entries(readTable(this.file)));
    for (const [tenant, uid] of this.byTenant) {
      if (uid < range.start || uid > range.end) {
        throw new BerthError(
          'invalid_config',
          `--agent-uids ${range.start}-${range.end}: tenant ${tenant} already runs as uid ${uid} in this data dir (${this.file}); give a range that includes it`,
        );
      }
    }
  }

  /** The tenant's uid, given now (and recorded) if it has none. */
  uidFor(tenant: string): number {
    const known = this.byTenant.get(tenant);
    if (known !== undefined) return known;
    const used = new Set(this.byTenant.values());
    let uid = this.range.start;
    while (used.has(uid) || uid === process.getuid?.()) uid += 1;
    if (uid > this.range.end) {
      throw new BerthError(
        'invalid_config',
        `--agent-uids ${this.range.start}-${this.range.end}: every uid is taken; tenant ${tenant} has none to run as`,
      );
    }
    this.byTenant.set(tenant, uid);
    // Recorded before use, so that a crash never leaves files of a uid the table does not name.
    const temp = `${this.file}.tmp`;
    writeFileSync(temp, `${JSON.stringify(Object.fromEntries(this.byTenant), null, 2)}\n`, { mode: 0o600 });
    renameSync(temp, this.file);
    return uid;
  }
}

function readTable(file: string): Record<string, number> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw err;
  }
  const table = JSON.parse(text) as unknown;
  if (
    typeof table !== 'object' ||
    table === null ||
    !Object.values(table).every((uid) => Number.isInteger(uid) && (uid as number) > 0)
  ) {
    throw new BerthError('invalid_config', `${file} is not a table of tenant uids; remove it or fix it`);
  }
  return table as Record<string, number>;
}
