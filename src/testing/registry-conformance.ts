/**
 * The `SessionRegistry` conformance suite under vitest. The cases are in `conformance/registry-cases.ts`
 * (framework-neutral, also run by `runConformance` and `berth conformance`); this registers them. Run it
 * from an adapter's tests with a factory that returns a registry over fresh, isolated state.
 */
import type { SessionRegistry } from '../stores/types.js';
import { registryConformanceCases } from './conformance/registry-cases.js';
import { registerConformanceCases } from './conformance-vitest.js';

export { record } from './conformance/registry-cases.js';

export interface RegistryUnderTest {
  registry: SessionRegistry;
  cleanup?: () => Promise<void>;
}

/** Registers `describe('<name>: SessionRegistry conformance')` with one case per contract. */
export function runRegistryConformance(name: string, factory: () => Promise<RegistryUnderTest>): void {
  registerConformanceCases(`${name}: SessionRegistry conformance`, registryConformanceCases, async () => {
    const { registry, cleanup } = await factory();
    return { instance: registry, cleanup };
  });
}
