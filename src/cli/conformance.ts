/**
 * `berth conformance STORE_URL`: runs the SessionStore, SessionRegistry, EventLog and Catalog conformance
 * suites (and, on PostgreSQL and Redis, the Coordination suite: host registry, leases, fencing) against the
 * live backend a store URL names. Each case runs in a namespace of its own beside the URL's
 * (see `isolatedStoreUrl`), removed after it with `Stores.destroy()`; the URL's own data is never read or
 * written. The shared cases open that namespace several times, as several Berth processes would. The
 * cases run with `requireAll`: an optional method missing from one of Berth's adapters fails its cases.
 */
import { randomBytes } from 'node:crypto';
import { HELP_OPTION, formatOptions, parseCommandArgs, type CommandOption } from './args.js';
import { BerthError, describeError, isBerthError } from '../errors.js';
import { redactUrl } from '../redact.js';
import { isolatedStoreUrl, openStores, storeHasLeases } from '../stores/open-stores.js';
import type { Stores } from '../stores/types.js';
import {
  catalogConformanceCases,
  coordinationConformanceCases,
  eventLogConformanceCases,
  registryConformanceCases,
  runConformance,
  sessionStoreConformanceCases,
} from '../testing/conformance/index.js';
import type { ConformanceCase, ConformanceResult, InstancesUnderTest } from '../testing/conformance/index.js';
import { waitForShutdownSignal } from './signals.js';

/** `berth conformance`'s flags: its `parseArgs` options and its help. */
const CONFORMANCE_OPTIONS = {
  json: { type: 'boolean', help: 'print the results as one JSON document instead of a table' },
  only: {
    type: 'string',
    value: 'PATTERN',
    help: 'run only the cases whose "SUITE > [GROUP >] CASE" matches this regular expression\n(case-insensitive)',
  },
  help: HELP_OPTION,
} as const satisfies Record<string, CommandOption>;

const HELP = `Usage: berth conformance STORE_URL [--json] [--only PATTERN]

Runs Berth's store conformance suites (SessionStore, SessionRegistry, EventLog, Catalog, and on
PostgreSQL and Redis the Coordination suite of many hosts) against the backend STORE_URL names, e.g.
postgres://USER@HOST:5432/DB?schema=berth. Each case gets a namespace of its own, removed after it: a
file beside a SQLite database, the schema <schema>_c_<tag>, the Redis prefix <prefix>:c:<tag>, the S3
prefix PREFIX/c-<tag>. The URL's own data is never touched. Every store a URL opens is one of Berth's,
which implement every optional method of the SDK's SessionStore: a case that needs one the store lacks
fails rather than being skipped.

${formatOptions(CONFORMANCE_OPTIONS)}

Exit status: 0 when no case failed, 1 when one did, 2 for bad arguments, a bad URL or an unreachable
backend.`;

/** Instances a shared case gets: separate clients on one namespace, as separate Berth processes have. */
const SHARED_INSTANCES = 3;

/** Lines of a failure message shown under its row; `--json` has all of it. */
const DETAIL_LINES = 8;

/** What the output needs of a case. */
type CaseTitle = Pick<ConformanceCase<unknown>, 'suite' | 'group' | 'name'>;

interface Suite<T> {
  cases: readonly ConformanceCase<T>[];
  pick: (stores: Stores) => T;
}

export async function runConformanceCommand(argv: readonly string[]): Promise<number> {
  const parsed = parseCommandArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: CONFORMANCE_OPTIONS,
  });
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const [url, ...extra] = positionals;
  if (url === undefined || extra.length > 0) {
    throw new BerthError('invalid_config', `berth conformance takes one STORE_URL\n\n${HELP}`);
  }
  let only: RegExp | undefined;
  if (values.only !== undefined) {
    try {
      only = new RegExp(values.only, 'i');
    } catch (err) {
      throw new BerthError('invalid_config', `--only: ${describeError(err)}`);
    }
  }
  const selected = <T>(suite: Suite<T>): Suite<T> => ({
    ...suite,
    cases: suite.cases.filter((kase) => !only || only.test(caseTitle(kase))),
  });
  const sessionStores = selected({ cases: sessionStoreConformanceCases, pick: (s) => s.transcriptStore });
  const registries = selected({ cases: registryConformanceCases, pick: (s) => s.registry });
  const eventLogs = selected({ cases: eventLogConformanceCases, pick: (s) => s.eventLog });
  const catalogs = selected({ cases: catalogConformanceCases, pick: (s) => s.catalog });
  // Only the stores that can run many hosts have coordination (stores/coordination.ts).
  const coordinations = selected({
    cases: storeHasLeases(url) ? coordinationConformanceCases : [],
    pick: (s) => s,
  });
  const all: readonly CaseTitle[] = [
    ...sessionStores.cases,
    ...registries.cases,
    ...eventLogs.cases,
    ...catalogs.cases,
    ...coordinations.cases,
  ];
  if (all.length === 0)
    throw new BerthError('invalid_config', `--only ${values.only ?? ''}: no case matches`);

  const shown = redactUrl(url);
  const run = randomBytes(3).toString('hex');
  let made = 0;
  const leftovers: string[] = [];

  /** Opens `count` instances of a fresh namespace; the cleanup removes it. */
  const openNamespace = async (
    count: number,
  ): Promise<{ opened: Stores[]; cleanup: () => Promise<void> }> => {
    const isolated = isolatedStoreUrl(url, `${run}${(made++).toString(36)}`);
    const opened: Stores[] = [];
    const cleanup = () => removeNamespace(isolated, opened, () => leftovers.push(redactUrl(isolated)));
    try {
      for (let i = 0; i < count; i++) opened.push(await openStores(isolated));
    } catch (err) {
      // Nothing opened, nothing made (a store creates its namespace only once it can reach it); trying to
      // remove it would only wait for the unreachable backend again.
      if (opened.length > 0) await cleanup().catch(() => {});
      throw err;
    }
    return { opened, cleanup };
  };

  // The URL is checked (parsed, backend reached, namespace created and removed) before any case runs, so
  // that a bad URL or an unreachable backend is one clear error rather than a table of failures.
  try {
    await (await openNamespace(1)).cleanup();
  } catch (err) {
    if (isBerthError(err, 'invalid_config')) throw err;
    throw new BerthError('invalid_config', `cannot use ${shown}: ${describeError(err)}`, { cause: err });
  }

  const controller = new AbortController();
  void waitForShutdownSignal().then((signal) => controller.abort(new Error(`interrupted by ${signal}`)));

  const table = values.json ? undefined : new Table(all);
  if (table) {
    process.stdout.write(
      `berth conformance: ${all.length} cases on ${shown}, each in a namespace of its own\n\n`,
    );
    table.header();
  }
  const noSharedReason = url.toLowerCase().startsWith('memory:')
    ? 'memory: opens a new database each time, so no two instances share one'
    : undefined;
  const started = performance.now();
  const results: ConformanceResult[] = [];
  const runSuite = async <T>(suite: Suite<T>): Promise<void> => {
    if (suite.cases.length === 0) return;
    const shared = async (): Promise<InstancesUnderTest<T>> => {
      const { opened, cleanup } = await openNamespace(SHARED_INSTANCES);
      return { instances: opened.map(suite.pick), cleanup };
    };
    results.push(
      ...(await runConformance(
        suite.cases,
        async () => {
          const { opened, cleanup } = await openNamespace(1);
          return { instance: suite.pick(opened[0]!), cleanup };
        },
        {
          ...(noSharedReason ? { noSharedReason } : { sharedFactory: shared }),
          // A URL only ever opens Berth's own adapters, which have every method; one that lost `delete`
          // would keep deleted sessions' transcripts, so its absence is a failure, not a skip.
          requireAll: true,
          signal: controller.signal,
          onResult: (result) => table?.row(result),
        },
      )),
    );
  };
  await runSuite(sessionStores);
  await runSuite(registries);
  await runSuite(eventLogs);
  await runSuite(catalogs);
  await runSuite(coordinations);
  const seconds = (performance.now() - started) / 1000;

  const count = (status: ConformanceResult['status']) => results.filter((r) => r.status === status).length;
  const [passed, failed, skipped] = [count('pass'), count('fail'), count('skip')];
  if (values.json) {
    const report = { store: shown, results, passed, failed, skipped, ms: Math.round(seconds * 1000) };
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    process.stdout.write(
      `\n${passed} passed, ${failed} failed, ${skipped} skipped (${seconds.toFixed(1)} s)\n`,
    );
  }
  if (leftovers.length > 0) {
    process.stderr.write(
      `berth conformance: this store cannot remove a namespace (no destroy()); left behind:\n` +
        leftovers.map((where) => `  ${where}\n`).join(''),
    );
  }
  return failed > 0 ? 1 : 0;
}

/**
 * Closes the case's instances, then removes the namespace through a fresh instance, so that nothing a case
 * did to its clients can get in the way: the registry suite mocks `Date.now`, from which the AWS SDK learns
 * a clock offset that makes the server refuse that client's later requests. Every step runs even if one
 * fails.
 */
async function removeNamespace(url: string, opened: readonly Stores[], noDestroy: () => void): Promise<void> {
  const failures: unknown[] = [];
  const step = async (work: () => Promise<void>) => {
    try {
      await work();
    } catch (err) {
      failures.push(err);
    }
  };
  for (const stores of opened) await step(() => stores.close());
  await step(async () => {
    const fresh = await openStores(url);
    try {
      if (fresh.destroy) await fresh.destroy();
      else noDestroy();
    } finally {
      await fresh.close();
    }
  });
  if (failures.length > 0) {
    throw new Error(`removing the namespace failed: ${failures.map(describeError).join('; ')}`);
  }
}

function caseTitle(kase: CaseTitle): string {
  return [kase.suite, kase.group, kase.name].filter((part) => part !== undefined).join(' > ');
}

/** The results table, printed a row at a time as the cases finish. */
class Table {
  private readonly suiteWidth: number;
  private readonly caseWidth: number;

  constructor(cases: readonly CaseTitle[]) {
    this.suiteWidth = Math.max('SUITE'.length, ...cases.map((kase) => kase.suite.length));
    this.caseWidth = Math.max('CASE'.length, ...cases.map((kase) => kase.name.length));
  }

  header(): void {
    this.line('SUITE', 'CASE', 'RESULT', 'MS');
  }

  row(result: ConformanceResult): void {
    this.line(result.suite, result.name, result.status, String(result.ms));
    const detail = result.status === 'fail' ? result.error : result.reason;
    if (detail === undefined) return;
    const lines = detail.split('\n');
    const indent = ' '.repeat(this.suiteWidth + 2);
    const shown = lines.slice(0, DETAIL_LINES).map((text) => `${indent}  ${text}\n`);
    if (lines.length > DETAIL_LINES)
      shown.push(`${indent}  ... (${lines.length - DETAIL_LINES} more lines)\n`);
    process.stdout.write(shown.join(''));
  }

  private line(suite: string, name: string, result: string, ms: string): void {
    process.stdout.write(
      `${suite.padEnd(this.suiteWidth)}  ${name.padEnd(this.caseWidth)}  ${result.padEnd(6)}  ${ms.padStart(6)}\n`,
    );
  }
}
