/**
 * `berth/testing`: what users need to test their own Berth deployments and adapters without spending
 * tokens: the scripted Messages API server and the shared conformance suites with a plain runner (no test
 * framework needed; the vitest registrations are `berth/testing/vitest`).
 */
export * from './conformance/index.js';
export * from './mock-model.js';
export * from './scenario.js';
export { DEFAULT_SCENARIOS, DEFAULT_SCENARIO_HELP } from './default-scenarios.js';
