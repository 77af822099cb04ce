/**
 * The conformance suites without a test framework: the case lists, their helpers and a plain runner. The
 * vitest adapters over the same cases are in `../vitest.ts` (`berth/testing/vitest`).
 */
export { ATOMIC_REPLACE_CASE, blobStoreConformanceCases } from './blob-store-cases.js';
export { catalogConformanceCases, catalogEntry } from './catalog-cases.js';
export { coordinationConformanceCases } from './coordination-cases.js';
export { event, eventLogConformanceCases } from './event-log-cases.js';
export { record, registryConformanceCases } from './registry-cases.js';
export { sessionStoreConformanceCases } from './session-store-cases.js';
export { runConformance } from './runner.js';
export type {
  ConformanceCase,
  ConformanceContext,
  ConformanceFactory,
  ConformanceResult,
  ConformanceStatus,
  InstancesUnderTest,
  InstanceUnderTest,
  RunConformanceOptions,
  SharedConformanceFactory,
} from './runner.js';
