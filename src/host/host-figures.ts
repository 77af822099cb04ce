/** What `/metrics` reads from a host at each scrape (observe/metrics.ts's `HostFigures`). */
import type { HostFigures } from '../observe/metrics.js';
import { SESSION_TRANSITIONS, type SessionState } from '../session/session-state.js';
import type { SessionHost } from './session-host.js';

export function hostFigures(
  host: SessionHost,
  backlog: () => { entries: number; oldestSeconds: number },
): HostFigures {
  return {
    info: () => host.info(),
    sessionStates: () => {
      // Every state, 0 included: a series that vanishes reads as "no data", not as none.
      const states = Object.fromEntries(Object.keys(SESSION_TRANSITIONS).map((s) => [s, 0])) as Record<
        SessionState,
        number
      >;
      for (const s of host.liveSessions) states[s.currentState]++;
      return states;
    },
    subprocessRssBytes: () => host.liveSessions.reduce((sum, s) => sum + (host.lastRssBytes(s) ?? 0), 0),
    mirror: backlog,
  };
}
