/**
 * What a server reports to: its log (pino), its metrics (prom-client) and its tracer (OpenTelemetry).
 * Made once at the edge (`berth serve`, or whoever embeds Berth) and handed to the parts that report,
 * never reached through a global: two servers in one process (the tests) keep their figures apart.
 *
 * The tracer is OpenTelemetry's no-op one unless tracing was started (`OTEL_EXPORTER_OTLP_ENDPOINT`, see
 * tracing.ts): a span then costs a function call and nothing is recorded.
 */
import { trace, type Tracer } from '@opentelemetry/api';
import { silentLogger, type Logger } from './logger.js';
import { Metrics } from './metrics.js';

export interface Telemetry {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly tracer: Tracer;
  /** True when spans are recorded (tracing.ts started a provider): hot paths skip the no-op spans otherwise. */
  readonly tracing: boolean;
  /** Ends what the bundle started (tracing.ts's provider: flushed, unregistered); whoever made it calls it. */
  readonly close?: (() => Promise<void>) | undefined;
}

/** The name Berth's spans are recorded under. */
export const TRACER_NAME = 'berth';

/** A telemetry bundle; what is not given is quiet (a silent log, a fresh registry, the global tracer). */
export function makeTelemetry(parts: Partial<Telemetry> = {}): Telemetry {
  return {
    log: parts.log ?? silentLogger(),
    metrics: parts.metrics ?? new Metrics(),
    tracer: parts.tracer ?? trace.getTracer(TRACER_NAME),
    tracing: parts.tracing ?? false,
    ...(parts.close && { close: parts.close }),
  };
}
