/**
 * `berth/testing/vitest`: the conformance suites registered as vitest cases, for an adapter's own test
 * files. Needs vitest; `berth/testing` has the same cases with a plain runner that does not.
 */
export { ATOMIC_REPLACE_CASE, runBlobStoreConformance } from './blob-store-conformance.js';
export type { BlobStoreConformanceOptions, BlobStoreUnderTest } from './blob-store-conformance.js';
export { catalogEntry, runCatalogConformance } from './catalog-conformance.js';
export type { CatalogUnderTest } from './catalog-conformance.js';
export { runCoordinationConformance } from './coordination-conformance.js';
export type {
  CoordinationConformanceOptions,
  CoordinationUnderTest,
  SharedCoordinationUnderTest,
} from './coordination-conformance.js';
export { event, runEventLogConformance } from './event-log-conformance.js';
export type { EventLogUnderTest } from './event-log-conformance.js';
export { record, runRegistryConformance } from './registry-conformance.js';
export type { RegistryUnderTest } from './registry-conformance.js';
export { runSessionStoreConformance } from './session-store-conformance.js';
export type {
  SessionStoreConformanceOptions,
  SessionStoreUnderTest,
  SharedSessionStoresUnderTest,
} from './session-store-conformance.js';
