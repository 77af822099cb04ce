/**
 * What telemetry makes of one session. Most of it is read from the session's own events, the same ones
 * its clients get, so nothing the session does has to remember to report:
 * - log lines (a child logger with `tenant` and `session_id`): turns at debug and their ends at info,
 *   errors at warn, suspensions, reschedules and the end of the session at info;
 * - metrics: turn durations by stop reason, suspensions and recycles by a bounded reason.
 * The two things events cannot show come through the session's observer: a span around each turn, so
 * that what the turn does (a spawn, a restore, store calls) is traced inside it, and how long its
 * subprocess took to send its first message.
 */
import { errorLogger, type Logger } from '../observe/logger.js';
import { inSpan, recordingTracer } from '../observe/spans.js';
import type { Telemetry } from '../observe/telemetry.js';
import type { StoredEvent } from '../session/events.js';
import type { SessionObserver } from '../session/session-types.js';
import type { SessionRecord } from '../stores/types.js';

export interface SessionTelemetry {
  readonly log: Logger;
  readonly observer: SessionObserver;
  /** Failures of the session that no client sees. */
  readonly onError: (err: unknown) => void;
  /** Logs and counts what the session's events say; subscribe it to the session's event stream. */
  readonly onEvent: (event: StoredEvent) => void;
}

/** `berth_recycles_total{reason}`: the policy's reason, a free text, sorted into a fixed set. */
export function recycleReason(text: string): string {
  if (/\bturns since spawn\b/.test(text)) return 'turns';
  if (/\bsoft limit\b/.test(text)) return 'soft_rss';
  if (/^age\b/.test(text)) return 'age';
  return 'other';
}

const SUSPEND_REASONS = new Set(['idle_timeout', 'capacity', 'host_draining', 'rebalance']);

export function sessionTelemetry(
  telemetry: Telemetry,
  record: Pick<SessionRecord, 'tenant' | 'id'>,
): SessionTelemetry {
  const { metrics } = telemetry;
  const tracer = recordingTracer(telemetry);
  const log = telemetry.log.child({ tenant: record.tenant, session_id: record.id });
  const attributes = { 'berth.tenant': record.tenant, 'berth.session_id': record.id };
  const observer: SessionObserver = {
    turn: (run) => inSpan(tracer, 'berth.turn', attributes, run),
    started: (kind, ms) => {
      metrics.sessionStart.observe({ kind }, ms / 1000);
      // The span is recorded when the start is known to be over; it began `ms` ago, under the turn's span.
      const now = Date.now();
      tracer
        ?.startSpan(`berth.subprocess.${kind === 'warm' ? 'claim' : 'start'}`, {
          startTime: now - ms,
          attributes: { ...attributes, 'berth.start_kind': kind },
        })
        .end(now);
      log.debug({ kind, ms }, 'subprocess started');
    },
    ended: (errorType) => {
      // Counted here, where the subprocess ends, not from `session.error`: an idle session's memory kill
      // and an interrupted turn's emit none.
      if (errorType === 'hard_rss_exceeded') metrics.recycles.inc({ reason: 'hard_rss' });
      if (errorType === 'memory_limit') metrics.recycles.inc({ reason: 'memory_limit' });
    },
  };
  return {
    log,
    observer,
    onError: errorLogger(log, 'session failure'),
    onEvent: (event) => {
      switch (event.type) {
        case 'session.status_running':
          log.debug('turn started');
          break;
        case 'session.status_idle': {
          const stop = event.stop_reason.type;
          // `requires_action` pauses a turn; only a turn's end has a duration.
          if (event.duration_ms === undefined) break;
          metrics.turnDuration.observe({ stop_reason: stop }, event.duration_ms / 1000);
          log.info({ stop_reason: stop, duration_ms: event.duration_ms, usage: event.usage }, 'turn ended');
          break;
        }
        case 'session.error':
          log.warn({ error_type: event.error.type }, event.error.message);
          break;
        case 'session.status_rescheduled':
          metrics.recycles.inc({ reason: recycleReason(event.reason) });
          log.info({ reason: event.reason }, 'subprocess recycled');
          break;
        case 'session.status_suspended':
          metrics.suspends.inc({ reason: SUSPEND_REASONS.has(event.reason) ? event.reason : 'other' });
          log.info({ reason: event.reason }, 'session suspended');
          break;
        case 'session.status_terminated':
          log.info({ reason: event.reason }, 'session terminated');
          break;
        default:
          break;
      }
    },
  };
}
