/**
 * `--agent-telemetry`: the environment that makes an agent's CLI export its own OpenTelemetry metrics
 * and events (Claude Code's monitoring, `CLAUDE_CODE_ENABLE_TELEMETRY`) to the operator's collector,
 * tagged with what runs it: the resource attributes `berth.tenant` and, for a session's own subprocess,
 * `berth.session_id`. A warm spare is prewarmed before any session claims it, so its telemetry carries
 * the tenant only (its CLI's own `session.id` is the SDK session id the session keeps).
 *
 * OTLP over HTTP with JSON bodies, the protocol Berth's own spans use (the CLI also speaks `grpc` and
 * `http/protobuf`); the CLI adds `/v1/metrics` and `/v1/logs` to the endpoint. Nothing else of the
 * server's OTLP settings (headers, certificates) is passed on: an agent can read its environment.
 */

export interface AgentTelemetryOwner {
  tenant: string;
  /** The session; absent for a warm spare, which no session has claimed yet. */
  id?: string | undefined;
}

/** The variables to add to an agent's environment; none when `endpoint` is undefined (the flag is off). */
export function agentTelemetryEnv(
  endpoint: string | undefined,
  owner: AgentTelemetryOwner,
): Record<string, string> {
  if (endpoint === undefined) return {};
  const attributes: Record<string, string> = { 'berth.tenant': owner.tenant };
  if (owner.id !== undefined) attributes['berth.session_id'] = owner.id;
  return {
    CLAUDE_CODE_ENABLE_TELEMETRY: '1',
    OTEL_METRICS_EXPORTER: 'otlp',
    OTEL_LOGS_EXPORTER: 'otlp',
    OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    OTEL_EXPORTER_OTLP_ENDPOINT: endpoint,
    OTEL_RESOURCE_ATTRIBUTES: resourceAttributes(attributes),
  };
}

/**
 * `OTEL_RESOURCE_ATTRIBUTES` as the OpenTelemetry spec reads it: `key=value` pairs joined by commas, each
 * value percent-encoded (W3C baggage's octets), so a value holding `,`, `=`, `%` or a space survives.
 */
export function resourceAttributes(attributes: Readonly<Record<string, string>>): string {
  return Object.entries(attributes)
    .map(([key, value]) => `${key}=${encodeURIComponent(value)}`)
    .join(',');
}
