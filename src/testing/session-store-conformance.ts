/**
 * The `SessionStore` conformance suite under vitest. The cases are in `conformance/session-store-cases.ts`
 * (framework-neutral, also run by `runConformance` and `berth conformance`); this registers them:
 *
 * ```ts
 * import { runSessionStoreConformance } from 'berth/testing/vitest';
 * runSessionStoreConformance('my-store', async () => {
 *   const prefix = `test-${randomUUID()}`;
 *   return { store: new MyStore({ client, prefix }), cleanup: () => dropPrefix(client, prefix) };
 * });
 * ```
 *
 * The SDK's optional methods (`listSessions`, `listSessionSummaries`, `delete`, `listSubkeys`) may be
 * absent: the cases that need one are skipped and name it. An adapter meant to have them all passes
 * `{ requireAll: true }`, so that one it lost fails those cases instead (Berth's own adapters do).
 */
import type { SessionStore } from '@anthropic-ai/claude-agent-sdk';
import { requireEveryMethod } from './conformance/runner.js';
import { sessionStoreConformanceCases } from './conformance/session-store-cases.js';
import { registerConformanceCases } from './conformance-vitest.js';

/** A store over fresh state that no other call of the factory sees, and how to remove that state. */
export interface SessionStoreUnderTest {
  store: SessionStore;
  cleanup?: () => Promise<void>;
}

/** Several stores over one shared state (still isolated from every other call), and its cleanup. */
export interface SharedSessionStoresUnderTest {
  stores: SessionStore[];
  cleanup?: () => Promise<void>;
}

/** Options of {@link runSessionStoreConformance}. */
export interface SessionStoreConformanceOptions {
  /**
   * Makes at least two store instances that see the same data, as several Berth processes would: separate
   * clients or connections on one database, table, bucket or key prefix. That data must be fresh for each
   * call, like the main factory's. Enables the cases where several instances append to one session at the
   * same time; without it those cases are skipped and say so.
   */
  sharedFactory?: () => Promise<SharedSessionStoresUnderTest>;
  /**
   * Time allowed to each of the heavy cases (10,000 entries, 1 MiB entries, concurrent appenders). Only a
   * hang should hit it.
   * @default 120000
   */
  slowCaseTimeoutMs?: number;
  /**
   * Every optional method of the SDK's interface (`listSessions`, `listSessionSummaries`, `delete`,
   * `listSubkeys`) is required: a case that needs one the store lacks fails, its message naming the method,
   * instead of being skipped. For an adapter meant to implement them all, where a lost method must not
   * pass as a skip: a store without `delete` keeps every deleted session's transcript.
   * @default false (absent optional methods skip the cases that need them)
   */
  requireAll?: boolean;
}

/**
 * Registers a vitest `describe` block named after `name` with one case per contract. Each case calls
 * `factory` for fresh, isolated state and calls its `cleanup` at the end, pass or fail. The factory is also
 * called once while the cases are collected, to learn which optional methods the store has: a case that
 * needs an absent method is registered as skipped, its title naming the method (under `requireAll` it is
 * registered as usual and fails, naming the method).
 */
export function runSessionStoreConformance(
  name: string,
  factory: () => Promise<SessionStoreUnderTest>,
  options: SessionStoreConformanceOptions = {},
): void {
  const { sharedFactory } = options;
  registerConformanceCases(
    `SessionStore conformance: ${name}`,
    options.requireAll ? requireEveryMethod(sessionStoreConformanceCases) : sessionStoreConformanceCases,
    async () => {
      const { store, cleanup } = await factory();
      return { instance: store, cleanup };
    },
    {
      sharedFactory: sharedFactory
        ? async () => {
            const { stores, cleanup } = await sharedFactory();
            return { instances: stores, cleanup };
          }
        : undefined,
      slowCaseTimeoutMs: options.slowCaseTimeoutMs ?? 120_000,
    },
  );
}
