/**
 * The `EventLog` conformance suite under vitest. The cases are in `conformance/event-log-cases.ts`
 * (framework-neutral, also run by `runConformance` and `berth conformance`); this registers them. Run it
 * from an adapter's tests with a factory that returns a log over fresh, isolated state (a new database,
 * schema or key prefix per call).
 */
import type { EventLog } from '../stores/types.js';
import { eventLogConformanceCases } from './conformance/event-log-cases.js';
import { registerConformanceCases } from './conformance-vitest.js';

export { event } from './conformance/event-log-cases.js';

export interface EventLogUnderTest {
  log: EventLog;
  cleanup?: () => Promise<void>;
}

/** Registers `describe('<name>: EventLog conformance')` with one case per contract. */
export function runEventLogConformance(name: string, factory: () => Promise<EventLogUnderTest>): void {
  registerConformanceCases(`${name}: EventLog conformance`, eventLogConformanceCases, async () => {
    const { log, cleanup } = await factory();
    return { instance: log, cleanup };
  });
}
