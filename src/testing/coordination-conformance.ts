/**
 * The `Coordination` conformance suite under vitest. The cases are in `conformance/coordination-cases.ts`
 * (framework-neutral, also run by `runConformance`); this registers them. The factory returns a whole store
 * bundle with `coordination`, over fresh, isolated state, because the fencing cases write through the
 * bundle's registry, event log and transcript store:
 *
 * ```ts
 * import { runCoordinationConformance } from 'berth/testing/vitest';
 * runCoordinationConformance('my-store', async () => {
 *   const stores = await openStores(isolatedStoreUrl(url, tag));
 *   return { stores, cleanup: async () => { await stores.destroy?.(); await stores.close(); } };
 * });
 * ```
 */
import type { Stores } from '../stores/types.js';
import { coordinationConformanceCases } from './conformance/coordination-cases.js';
import { registerConformanceCases } from './conformance-vitest.js';

/** A store bundle with `coordination` over fresh state that no other call of the factory sees. */
export interface CoordinationUnderTest {
  stores: Stores;
  cleanup?: () => Promise<void>;
}

/** Several bundles over one shared state (still isolated from every other call), and its cleanup. */
export interface SharedCoordinationUnderTest {
  stores: Stores[];
  cleanup?: () => Promise<void>;
}

/** Options of {@link runCoordinationConformance}. */
export interface CoordinationConformanceOptions {
  /**
   * Makes at least two bundles that see the same data, as several Berth hosts would: separate clients on
   * one database schema or key prefix, fresh for each call. Enables the cases where hosts on separate
   * clients race for one lease; without it those cases are skipped and say so.
   */
  sharedFactory?: () => Promise<SharedCoordinationUnderTest>;
}

/** Registers `describe('<name>: Coordination conformance')` with one case per contract. */
export function runCoordinationConformance(
  name: string,
  factory: () => Promise<CoordinationUnderTest>,
  options: CoordinationConformanceOptions = {},
): void {
  const { sharedFactory } = options;
  registerConformanceCases(
    `${name}: Coordination conformance`,
    coordinationConformanceCases,
    async () => {
      const { stores, cleanup } = await factory();
      return { instance: stores, cleanup };
    },
    {
      sharedFactory: sharedFactory
        ? async () => {
            const { stores, cleanup } = await sharedFactory();
            return { instances: stores, cleanup };
          }
        : undefined,
    },
  );
}
