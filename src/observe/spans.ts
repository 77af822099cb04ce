/**
 * A span around one piece of async work, made active so that what the work does is traced inside it.
 * Without a tracer (tracing is off) the work simply runs: a hot path pays not even for a no-op span.
 */
import { SpanStatusCode, type Attributes, type Span, type Tracer } from '@opentelemetry/api';
import { redactText } from './logger.js';
import type { Telemetry } from './telemetry.js';

/** The tracer of `telemetry` when its spans are recorded; undefined when tracing is off. */
export function recordingTracer(telemetry: Telemetry): Tracer | undefined {
  return telemetry.tracing ? telemetry.tracer : undefined;
}

/** Runs `work` in a span `name` (marked an error if it throws), or alone when `tracer` is undefined. */
export function inSpan<T>(
  tracer: Tracer | undefined,
  name: string,
  attributes: Attributes,
  work: (span: Span | undefined) => Promise<T>,
): Promise<T> {
  if (!tracer) return work(undefined);
  return tracer.startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await work(span);
    } catch (err) {
      recordError(span, err);
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Marks `span` failed with `err`, its message and stack redacted as the log redacts them: a driver's
 * error may quote its connection string, and spans go to whoever runs the collector.
 */
export function recordError(span: Span, err: unknown): void {
  if (err instanceof Error) {
    span.recordException({
      name: err.name,
      message: redactText(err.message),
      ...(err.stack !== undefined && { stack: redactText(err.stack) }),
    });
  } else {
    span.recordException(redactText(String(err)));
  }
  span.setStatus({ code: SpanStatusCode.ERROR });
}
