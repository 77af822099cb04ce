/**
 * The flags of what a server reports: its log's format and level, where `/metrics` is served and to
 * whom, and whether the agents' own CLI telemetry goes to the operator's collector. Tracing itself is
 * turned on by OpenTelemetry's standard variables, `OTEL_EXPORTER_OTLP_ENDPOINT` or
 * `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (see observe/tracing.ts), as every OpenTelemetry SDK is. Parsed here, beside config.ts, which stays the one entry point.
 */
import { BerthError } from './errors.js';
import { parsePort, parseUrl } from './config-values.js';
import { LOG_FORMATS, LOG_LEVELS, type LogFormat, type LogLevel } from './observe/logger.js';

export interface ObserveConfig {
  /** `json` or `pretty`; null: pretty on a terminal, JSON otherwise. */
  logFormat: LogFormat | null;
  logLevel: LogLevel;
  /** `GET /metrics` without an API key, even when keys are configured. */
  metricsPublic: boolean;
  /** A second listener that serves only `/metrics` (on the API's host address); null: none. */
  metricsPort: number | null;
  /** The OTLP base endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT`); null: none. */
  otlpEndpoint: string | null;
  /**
   * Where spans are POSTed: `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` as it is, else `otlpEndpoint` with
   * `/v1/traces` (OpenTelemetry's rule for the two variables); null: tracing is off.
   */
  otlpTracesUrl: string | null;
  /** Agents' CLIs export their own telemetry (`CLAUDE_CODE_ENABLE_TELEMETRY`) to `otlpEndpoint`. */
  agentTelemetry: boolean;
}

export const OBSERVE_OPTIONS = [
  {
    flag: 'log-format',
    env: 'BERTH_LOG_FORMAT',
    type: 'string',
    help: 'json (one object per line) or pretty (default: pretty on a terminal, else json)',
  },
  {
    flag: 'log-level',
    env: 'BERTH_LOG_LEVEL',
    type: 'string',
    help: 'fatal, error, warn, info, debug, trace or silent (default info)',
  },
  {
    flag: 'metrics-public',
    env: 'BERTH_METRICS_PUBLIC',
    type: 'boolean',
    help: 'serve GET /metrics without an API key (by default it needs one when keys are configured)',
  },
  {
    flag: 'metrics-port',
    env: 'BERTH_METRICS_PORT',
    type: 'string',
    help: 'also serve GET /metrics (only) on this port, e.g. for a scraper inside the cluster',
  },
  {
    flag: 'agent-telemetry',
    env: 'BERTH_AGENT_TELEMETRY',
    type: 'boolean',
    help: "agents' CLIs send their own OpenTelemetry metrics and events to OTEL_EXPORTER_OTLP_ENDPOINT, tagged with the session id",
  },
] as const;

/** `--log-format` and `--log-level` (of `berth serve` and `berth router`); throws `invalid_config`. */
export function parseLogFlags(
  format: string | undefined,
  level: string | undefined,
): { format: LogFormat | null; level: LogLevel } {
  if (format !== undefined && !(LOG_FORMATS as readonly string[]).includes(format)) {
    throw new BerthError('invalid_config', `--log-format: ${JSON.stringify(format)} is not json or pretty`);
  }
  const chosen = level ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(chosen)) {
    throw new BerthError(
      'invalid_config',
      `--log-level: ${JSON.stringify(chosen)} is not one of ${LOG_LEVELS.join(', ')}`,
    );
  }
  return { format: (format as LogFormat | undefined) ?? null, level: chosen as LogLevel };
}

/** The reporting config; throws `BerthError('invalid_config')`. */
export function parseObserveConfig(
  str: (flag: string) => string | undefined,
  bool: (flag: string) => boolean,
  env: Readonly<Record<string, string | undefined>>,
  apiPort: number,
): ObserveConfig {
  const { format, level } = parseLogFlags(str('log-format'), str('log-level'));
  const metricsPortText = str('metrics-port');
  const metricsPort = metricsPortText === undefined ? null : parsePort(metricsPortText, '--metrics-port');
  if (metricsPort !== null && metricsPort !== 0 && metricsPort === apiPort) {
    throw new BerthError('invalid_config', `--metrics-port ${metricsPort} is the API's --port`);
  }
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined;
  const otlpEndpoint = base === undefined ? null : parseUrl(base, 'OTEL_EXPORTER_OTLP_ENDPOINT');
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || undefined;
  const otlpTracesUrl =
    traces !== undefined
      ? parseUrl(traces, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT')
      : otlpEndpoint && `${otlpEndpoint}/v1/traces`;
  const agentTelemetry = bool('agent-telemetry');
  if (agentTelemetry && otlpEndpoint === null) {
    throw new BerthError(
      'invalid_config',
      '--agent-telemetry needs OTEL_EXPORTER_OTLP_ENDPOINT: the collector the agents send their telemetry to',
    );
  }
  if (agentTelemetry && (str('sandbox') ?? 'bwrap') === 'bwrap') {
    // A sandboxed agent has no network but the model's relay and the egress proxy, which passes only
    // HTTPS to public addresses of the agent's own allowed domains: its CLI could not reach a collector.
    throw new BerthError(
      'invalid_config',
      "--agent-telemetry needs --sandbox none: sandboxed agents have no network to a collector (the egress proxy passes only HTTPS to an agent's allowed public domains); see docs/operations.md, Traces",
    );
  }
  return {
    logFormat: format,
    logLevel: level,
    metricsPublic: bool('metrics-public'),
    metricsPort,
    otlpEndpoint,
    otlpTracesUrl,
    agentTelemetry,
  };
}
