/**
 * `berth/testing`: what users need to test their own Berth deployments and adapters without spending
 * tokens: the scripted Messages API server and the shared conformance suites.
 */
export * from './mock-model.js';
export * from './scenario.js';
