/**
 * Store calls as telemetry sees them: each one inside a traced request or turn a span (`store append
 * events`, with the backend), and each failure of the store itself counted in
 * `berth_store_errors_total{backend}`. A refusal that is the store's answer (a session that is not there,
 * a compare-and-set that lost, a conflict the caller checks for) is no failure of the store and is not
 * counted; a deadline missed (`store_unavailable`), a refused connection or any other error is.
 */
import { SpanKind, trace } from '@opentelemetry/api';
import { isBerthError } from '../errors.js';
import type { StoreObserver } from '../stores/deadline.js';
import { recordError } from './spans.js';
import type { Telemetry } from './telemetry.js';

/** True when `err` says the store failed, not that it answered no. */
export function isStoreFailure(err: unknown): boolean {
  if (!isBerthError(err)) return true;
  return err.type === 'api_error' && err.code !== 'aborted';
}

export function storeCalls(telemetry: Telemetry, backend: string): StoreObserver {
  const { tracer, metrics } = telemetry;
  const attributes = { 'db.system': backend };
  return async (what, call) => {
    // Traced as a part of a traced request or turn; a call outside one (the mirror shipping its backlog,
    // the SDK's appends after the turn that started the subprocess ended) is only counted.
    if (!telemetry.tracing || !trace.getActiveSpan()?.isRecording()) {
      try {
        return await call();
      } catch (err) {
        if (isStoreFailure(err)) metrics.storeErrors.inc({ backend });
        throw err;
      }
    }
    return tracer.startActiveSpan(what, { kind: SpanKind.CLIENT, attributes }, async (span) => {
      try {
        return await call();
      } catch (err) {
        if (isStoreFailure(err)) {
          metrics.storeErrors.inc({ backend });
          recordError(span, err);
        }
        throw err;
      } finally {
        span.end();
      }
    });
  };
}
