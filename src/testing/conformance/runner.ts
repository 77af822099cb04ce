/**
 * The conformance suites as plain data, and a runner that needs no test framework. A suite is a list of
 * {@link ConformanceCase}s; each case gets fresh, isolated state from a factory, runs, and has that state
 * removed, pass or fail. `runConformance` runs a list and reports every case; the vitest adapters
 * (`berth/testing/vitest`) register the same cases with `describe`/`it`, and `berth conformance STORE_URL`
 * runs them against a live backend.
 *
 * ```ts
 * import { runConformance, sessionStoreConformanceCases } from 'berth/testing';
 * const results = await runConformance(sessionStoreConformanceCases, async () => {
 *   const prefix = `test-${randomUUID()}`;
 *   return { instance: new MyStore({ client, prefix }), cleanup: () => dropPrefix(client, prefix) };
 * });
 * if (results.some((r) => r.status === 'fail')) process.exitCode = 1;
 * ```
 */
import { describeError } from '../../errors.js';

/** What a case gets: instances over state that no other case sees. */
export interface ConformanceContext<T> {
  /** The instance under test; for a `shared` case, the first of `instances`. */
  instance: T;
  /** For a `shared` case, two or more instances over one state; otherwise `[instance]`. */
  instances: readonly T[];
}

/** One contract, checked with `node:assert`: it passes when `run` resolves. */
export interface ConformanceCase<T> {
  /** The suite it belongs to: `SessionStore`, `SessionRegistry`, `EventLog`, `Catalog`, `BlobStore`, ... */
  suite: string;
  /** A heading within the suite (a vitest `describe`); not part of the case's identity. */
  group?: string;
  /** What the case checks; unique within its suite. */
  name: string;
  /**
   * Optional methods the case needs: without them the case is skipped and says which are absent, or, under
   * `requireAll`, fails naming them.
   */
  requires?: readonly (keyof T & string)[];
  /** Needs several instances over one state (separate clients, as separate Berth processes would have). */
  shared?: true;
  /** Heavy (large entries, long sessions, many writers): allowed the slow timeout. */
  slow?: true;
  run(ctx: ConformanceContext<T>): Promise<void>;
}

/** An instance over fresh state, and how to remove that state. */
export interface InstanceUnderTest<T> {
  instance: T;
  cleanup?: () => Promise<void>;
}

/** Several instances over one fresh state, and how to remove it. */
export interface InstancesUnderTest<T> {
  instances: T[];
  cleanup?: () => Promise<void>;
}

/** Makes fresh, isolated state for one case. Called once per case. */
export type ConformanceFactory<T> = () => Promise<InstanceUnderTest<T>>;

/** Makes at least two instances over one fresh state, for the `shared` cases. */
export type SharedConformanceFactory<T> = () => Promise<InstancesUnderTest<T>>;

export type ConformanceStatus = 'pass' | 'fail' | 'skip';

export interface ConformanceResult {
  suite: string;
  name: string;
  status: ConformanceStatus;
  /** How long the case itself ran, without making and removing its state; 0 when it did not run. */
  ms: number;
  /** Why it failed (the assertion's message, or the error's). */
  error?: string;
  /** Why it was skipped. */
  reason?: string;
}

/** Options of {@link runConformance}. */
export interface RunConformanceOptions<T> {
  /** Makes several instances over one state; without it the `shared` cases are skipped. */
  sharedFactory?: SharedConformanceFactory<T>;
  /**
   * The reason a `shared` case gives when there is no `sharedFactory`.
   * @default 'no sharedFactory was given'
   */
  noSharedReason?: string;
  /**
   * Time allowed to a case, its factory and its cleanup, each; a case that takes longer fails and its
   * cleanup still runs.
   * @default 60000
   */
  timeoutMs?: number;
  /**
   * The same for the `slow` cases (10,000 entries, 1 MiB entries, concurrent writers). Only a hang should
   * hit it.
   * @default 120000
   */
  slowTimeoutMs?: number;
  /** Called with each result as soon as it is known, in case order. */
  onResult?: (result: ConformanceResult) => void;
  /**
   * Cases to skip, by name, each with the reason the result gives: a backend that cannot keep a contract
   * (s3rver replaces objects in place, so a read during a put can mix versions) says so instead of failing.
   */
  skip?: Readonly<Record<string, string>>;
  /** Stops the run: the case in flight fails, its cleanup runs, and `runConformance` rejects. */
  signal?: AbortSignal;
  /**
   * Every optional method a case needs is required: a case whose instance lacks one fails, naming it,
   * instead of being skipped. For adapters meant to implement the whole interface, where a lost method
   * must not pass as a skip (Berth runs its own adapters with it; a `SessionStore` without `delete` would
   * keep every deleted session's transcript). See {@link requireEveryMethod}.
   * @default false (an absent optional method skips the cases that need it)
   */
  requireAll?: boolean;
}

/** The factories a case needs; what {@link runConformanceCase} takes. */
export interface ConformanceFactories<T> {
  factory: ConformanceFactory<T>;
  sharedFactory?: SharedConformanceFactory<T> | undefined;
}

/** The optional methods `requires` names that `instance` lacks. */
export function absentMethods<T>(kase: ConformanceCase<T>, instance: T): string[] {
  return (kase.requires ?? []).filter(
    (method) => typeof (instance as Record<string, unknown>)[method] !== 'function',
  );
}

/** The skip reason for the absent methods, e.g. `listSessions and delete are absent`. */
export function absentReason(absent: readonly string[]): string {
  return `${absent.join(' and ')} ${absent.length > 1 ? 'are' : 'is'} absent`;
}

/** The failure of a case whose instance lacks methods that `requireAll` makes required. */
export function requiredReason(absent: readonly string[]): string {
  return `${absentReason(absent)}, and every optional method is required here (requireAll)`;
}

/**
 * `cases` with their optional methods made required (what `requireAll` does): a case that needs methods
 * an instance lacks no longer skips, it fails naming them. Cases that need no optional method are
 * returned as they are.
 */
export function requireEveryMethod<T>(cases: readonly ConformanceCase<T>[]): ConformanceCase<T>[] {
  return cases.map((kase) => {
    const { requires, ...rest } = kase;
    if (!requires?.length) return kase;
    return {
      ...rest,
      run: async (ctx) => {
        const absent = [...new Set(ctx.instances.flatMap((instance) => absentMethods(kase, instance)))];
        if (absent.length > 0) throw new Error(requiredReason(absent));
        await kase.run(ctx);
      },
    };
  });
}

/**
 * Runs every case in order, each on fresh state from `factory` (or `options.sharedFactory` for the
 * `shared` ones), and resolves to one result per case. A case fails when it throws, times out, or its
 * cleanup fails; it is skipped when it needs an optional method the instance lacks (it fails instead
 * under `requireAll`), or several instances and there is no `sharedFactory`. Never rejects for a failing
 * case; rejects only when `signal` aborts.
 */
export async function runConformance<T>(
  cases: readonly ConformanceCase<T>[],
  factory: ConformanceFactory<T>,
  options: RunConformanceOptions<T> = {},
): Promise<ConformanceResult[]> {
  const results: ConformanceResult[] = [];
  for (const kase of options.requireAll ? requireEveryMethod(cases) : cases) {
    options.signal?.throwIfAborted();
    const result = await runOne(kase, factory, options);
    results.push(result);
    options.onResult?.(result);
  }
  options.signal?.throwIfAborted();
  return results;
}

async function runOne<T>(
  kase: ConformanceCase<T>,
  factory: ConformanceFactory<T>,
  options: RunConformanceOptions<T>,
): Promise<ConformanceResult> {
  const base = { suite: kase.suite, name: kase.name };
  const limit = kase.slow ? (options.slowTimeoutMs ?? 120_000) : (options.timeoutMs ?? 60_000);
  const { signal } = options;
  const skipped =
    options.skip && Object.hasOwn(options.skip, kase.name) ? options.skip[kase.name] : undefined;
  if (skipped !== undefined) return { ...base, status: 'skip', ms: 0, reason: skipped };
  if (kase.shared && !options.sharedFactory) {
    return { ...base, status: 'skip', ms: 0, reason: options.noSharedReason ?? 'no sharedFactory was given' };
  }
  let state: InstancesUnderTest<T>;
  const making = makeState(kase, factory, options.sharedFactory);
  try {
    state = await bounded(making, limit, 'making its state', signal);
  } catch (err) {
    // A factory that finishes after the timeout still has its state removed.
    making
      .then(
        (late) => late.cleanup?.(),
        () => {},
      )
      .catch(() => {});
    return { ...base, status: 'fail', ms: 0, error: `could not make its state: ${errorText(err)}` };
  }
  let result: ConformanceResult;
  const first = state.instances[0];
  const absent = first === undefined ? [] : absentMethods(kase, first);
  if (absent.length > 0) {
    result = { ...base, status: 'skip', ms: 0, reason: absentReason(absent) };
  } else {
    const started = performance.now();
    try {
      await bounded(runBody(kase, state.instances), limit, 'the case', signal);
      result = { ...base, status: 'pass', ms: elapsed(started) };
    } catch (err) {
      result = { ...base, status: 'fail', ms: elapsed(started), error: errorText(err) };
    }
  }
  try {
    // Not tied to the signal: an aborted run still removes the state of the case it stopped.
    if (state.cleanup) await bounded(state.cleanup(), limit, 'its cleanup');
  } catch (err) {
    const text = errorText(err);
    result =
      result.status === 'fail'
        ? { ...result, error: `${result.error ?? ''}; its cleanup failed too: ${text}` }
        : { ...base, status: 'fail', ms: result.ms, error: `its cleanup failed: ${text}` };
  }
  return result;
}

/**
 * Makes a case's state, runs it and removes the state, throwing what the case throws. The vitest adapters
 * call it from `it`; skips are decided before (see {@link absentMethods}), and timeouts are vitest's.
 */
export async function runConformanceCase<T>(
  kase: ConformanceCase<T>,
  factories: ConformanceFactories<T>,
): Promise<void> {
  const state = await makeState(kase, factories.factory, factories.sharedFactory);
  try {
    await runBody(kase, state.instances);
  } finally {
    await state.cleanup?.();
  }
}

async function makeState<T>(
  kase: ConformanceCase<T>,
  factory: ConformanceFactory<T>,
  sharedFactory: SharedConformanceFactory<T> | undefined,
): Promise<InstancesUnderTest<T>> {
  if (kase.shared) {
    if (!sharedFactory) throw new Error(`"${kase.name}" needs a sharedFactory`);
    return sharedFactory();
  }
  const { instance, cleanup } = await factory();
  return cleanup ? { instances: [instance], cleanup } : { instances: [instance] };
}

async function runBody<T>(kase: ConformanceCase<T>, instances: readonly T[]): Promise<void> {
  const [instance] = instances;
  if (instance === undefined) throw new Error('the factory returned no instance');
  if (kase.shared && instances.length < 2) {
    throw new Error(
      `the sharedFactory returned ${instances.length} instance(s); shared cases need 2 or more`,
    );
  }
  await kase.run({ instance, instances });
}

/** `work`, failing after `ms` or when `signal` aborts (`work` itself is abandoned, not stopped). */
async function bounded<R>(work: Promise<R>, ms: number, what: string, signal?: AbortSignal): Promise<R> {
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const stop = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    if (signal) {
      onAbort = () => reject(new Error(`${what} was stopped: ${describeError(signal.reason)}`));
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
    }
  });
  try {
    return await Promise.race([work, stop]);
  } finally {
    clearTimeout(timer);
    if (onAbort) signal?.removeEventListener('abort', onAbort);
  }
}

function elapsed(started: number): number {
  return Math.round(performance.now() - started);
}

/** The error's message, its class named unless it is a plain `Error`. */
function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    const shown = typeof code === 'string' && code !== 'ERR_ASSERTION' ? ` (${code})` : '';
    const name = err.name === 'Error' ? '' : `${err.name}${shown}: `;
    return `${name}${err.message}`;
  }
  return String(err);
}
