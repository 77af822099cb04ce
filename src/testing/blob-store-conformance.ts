/**
 * The `BlobStore` conformance suite under vitest. The cases are in `conformance/blob-store-cases.ts`
 * (framework-neutral, also run by `runConformance`); this registers them. Run it from an adapter's tests
 * with a factory that returns a store over fresh, isolated state (a new directory or key prefix per call):
 *
 * ```ts
 * import { runBlobStoreConformance } from 'berth/testing/vitest';
 * runBlobStoreConformance('my-blobs', async () => {
 *   const prefix = `test-${randomUUID()}`;
 *   return { store: new MyBlobStore({ client, prefix }), cleanup: () => dropPrefix(client, prefix) };
 * });
 * ```
 */
import type { BlobStore } from '../workspace/blob-store.js';
import { blobStoreConformanceCases } from './conformance/blob-store-cases.js';
import { registerConformanceCases } from './conformance-vitest.js';

export { ATOMIC_REPLACE_CASE } from './conformance/blob-store-cases.js';

export interface BlobStoreUnderTest {
  store: BlobStore;
  cleanup?: () => Promise<void>;
}

/** Options of {@link runBlobStoreConformance}. */
export interface BlobStoreConformanceOptions {
  /**
   * Cases the backend cannot pass, by name, each with the reason the skipped case's title gives (e.g.
   * `{ [ATOMIC_REPLACE_CASE]: 's3rver rewrites an object in place' }`).
   */
  skip?: Readonly<Record<string, string>>;
  /**
   * Time allowed to each of the heavy cases (multi-MiB blobs, concurrent puts). Only a hang should hit it.
   * @default 120000
   */
  slowCaseTimeoutMs?: number;
}

/** Registers `describe('<name>: BlobStore conformance')` with one case per contract. */
export function runBlobStoreConformance(
  name: string,
  factory: () => Promise<BlobStoreUnderTest>,
  options: BlobStoreConformanceOptions = {},
): void {
  registerConformanceCases(
    `${name}: BlobStore conformance`,
    blobStoreConformanceCases,
    async () => {
      const { store, cleanup } = await factory();
      return { instance: store, cleanup };
    },
    { skip: options.skip, slowCaseTimeoutMs: options.slowCaseTimeoutMs ?? 120_000 },
  );
}
