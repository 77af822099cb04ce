/**
 * The `Catalog` conformance suite under vitest. The cases are in `conformance/catalog-cases.ts`
 * (framework-neutral, also run by `runConformance` and `berth conformance`); this registers them. Run it
 * from an adapter's tests with a factory that returns a catalog over fresh, isolated state.
 */
import type { Catalog } from '../stores/catalog.js';
import { catalogConformanceCases } from './conformance/catalog-cases.js';
import { registerConformanceCases } from './conformance-vitest.js';

export { catalogEntry } from './conformance/catalog-cases.js';

export interface CatalogUnderTest {
  catalog: Catalog;
  cleanup?: () => Promise<void>;
}

/** Registers `describe('<name>: Catalog conformance')` with one case per contract. */
export function runCatalogConformance(name: string, factory: () => Promise<CatalogUnderTest>): void {
  registerConformanceCases(`${name}: Catalog conformance`, catalogConformanceCases, async () => {
    const { catalog, cleanup } = await factory();
    return { instance: catalog, cleanup };
  });
}
