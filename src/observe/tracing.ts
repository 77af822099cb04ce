/**
 * Tracing: Berth's spans sent by OTLP/HTTP (JSON) to the collector that `OTEL_EXPORTER_OTLP_ENDPOINT`
 * (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) names, as the config parsed it (config-observe.ts).
 *
 * Started only when an endpoint is configured: the SDK packages are imported here, dynamically, so a
 * server without tracing never loads them, and its tracer stays OpenTelemetry's no-op one.
 *
 * A started tracer provider is registered as the process's global one, with an AsyncLocalStorage
 * context manager (a span made active stays the parent across awaits) and the W3C trace-context
 * propagator (an incoming `traceparent` is continued), unless the process already has a provider: an
 * application that embeds Berth with its own SDK keeps its globals, and Berth's spans then use Berth's
 * provider under the context manager already there. `shutdown` flushes what is buffered and gives back
 * what it registered, so a second server in the same process starts clean.
 *
 * The exporter reads the other standard variables itself (`OTEL_EXPORTER_OTLP_HEADERS`, `..._TIMEOUT`,
 * `..._COMPRESSION`, certificates); the resource takes `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
 * over Berth's defaults.
 */
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { ProxyTracerProvider, context, propagation, trace, type Tracer } from '@opentelemetry/api';
import { TRACER_NAME, type Telemetry } from './telemetry.js';

export interface TracingOptions {
  /** The URL spans are POSTed to: the OTLP base endpoint with `/v1/traces`, or the traces endpoint. */
  url: string;
  /** `service.instance.id`: the host id in multi-host mode. @default the hostname */
  instanceId?: string | undefined;
}

export interface Tracing {
  readonly tracer: Tracer;
  /** Flushes the spans not yet sent and unregisters what was registered; idempotent. */
  shutdown(): Promise<void>;
}

/**
 * What tracing adds to a telemetry bundle (`makeTelemetry`): a recording tracer and the `close` that shuts
 * it down, when `url` is set; nothing, and nothing loaded, when it is null.
 */
export async function tracingParts(
  url: string | null,
  instanceId?: string,
): Promise<Pick<Telemetry, 'tracer' | 'tracing' | 'close'> | undefined> {
  if (url === null) return undefined;
  const tracing = await startTracing({ url, instanceId });
  return { tracer: tracing.tracer, tracing: true, close: () => tracing.shutdown() };
}

/** How long a shutdown waits for the last spans to reach the collector. */
const FLUSH_TIMEOUT_MS = 5000;

/** A tracer provider exporting to `options.url`, registered (see the header). */
export async function startTracing(options: TracingOptions): Promise<Tracing> {
  const [{ NodeTracerProvider }, { BatchSpanProcessor }, { OTLPTraceExporter }, resources, semconv] =
    await Promise.all([
      import('@opentelemetry/sdk-trace-node'),
      import('@opentelemetry/sdk-trace-base'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
      import('@opentelemetry/semantic-conventions'),
    ]);
  const version = await packageVersion();
  const resource = resources
    .defaultResource()
    .merge(
      resources.resourceFromAttributes({
        [semconv.ATTR_SERVICE_NAME]: 'berth',
        [semconv.ATTR_SERVICE_INSTANCE_ID]: options.instanceId ?? os.hostname(),
        ...(version && { [semconv.ATTR_SERVICE_VERSION]: version }),
      }),
    )
    // The operator's own `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` win.
    .merge(resources.detectResources({ detectors: [resources.envDetector] }));
  const exporter = new OTLPTraceExporter({ url: options.url });
  const provider = new NodeTracerProvider({
    resource,
    spanProcessors: [new BatchSpanProcessor(exporter)],
  });
  const registered = !hasGlobalProvider();
  if (registered) provider.register();
  let shutdown: Promise<void> | undefined;
  return {
    tracer: provider.getTracer(TRACER_NAME, version),
    shutdown() {
      shutdown ??= (async () => {
        try {
          // Both bounded: a collector that is down costs the exit FLUSH_TIMEOUT_MS, then the spans go.
          await provider.forceFlush({ timeoutMillis: FLUSH_TIMEOUT_MS });
          await withinFlushTimeout(provider.shutdown());
        } finally {
          if (registered) {
            trace.disable();
            context.disable();
            propagation.disable();
          }
        }
      })();
      return shutdown;
    },
  };
}

/** `work`, or its end after FLUSH_TIMEOUT_MS, whichever comes first (the work is left to finish alone). */
async function withinFlushTimeout(work: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, FLUSH_TIMEOUT_MS);
    timer.unref();
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** True when some tracer provider is the process's global one already. */
function hasGlobalProvider(): boolean {
  const global = trace.getTracerProvider();
  // A fresh proxy's delegate is the API's no-op provider, the one the global proxy has until a registration.
  const none = new ProxyTracerProvider().getDelegate();
  return !(global instanceof ProxyTracerProvider) || global.getDelegate() !== none;
}

/** Berth's version, from its package.json (two levels up from here in src/ and in dist/ alike). */
async function packageVersion(): Promise<string | undefined> {
  try {
    const text = await readFile(new URL('../../package.json', import.meta.url), 'utf8');
    const version = (JSON.parse(text) as { version?: unknown }).version;
    return typeof version === 'string' ? version : undefined;
  } catch {
    return undefined;
  }
}
