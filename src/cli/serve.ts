import type { ServeConfig } from '../config.js';
import { createLogger, type Logger } from '../observe/logger.js';
import { defaultTelemetry } from '../host/open-core.js';
import { redactUrl } from '../redact.js';
import { startBerth, type BerthServer } from '../server.js';
import { waitForShutdownSignal } from './signals.js';
import { filterProcessWarnings } from './warnings.js';

/** What a drain may take beyond its grace period (suspending every session) before the exit is forced. */
const DRAIN_MARGIN_MS = 30_000;

export async function runServeCommand(config: ServeConfig): Promise<number> {
  const { logFormat, logLevel } = config.observe;
  const log = await createLogger({ level: logLevel, ...(logFormat && { format: logFormat }) });
  filterProcessWarnings(log);
  // Tracing (when an OTLP endpoint is configured) is this command's to end, after the drain's spans.
  const telemetry = await defaultTelemetry(config, log);
  const closeTelemetry = (): Promise<void> =>
    telemetry.close?.().catch((err: unknown) => log.warn({ err }, 'the last spans were not sent')) ??
    Promise.resolve();
  const server = await startBerth(config, { telemetry }).catch(async (err: unknown) => {
    await closeTelemetry();
    throw err;
  });
  logStartup(log, server, config);
  const forceExit = (): void => {
    const killed = server.host.killAllNow();
    log.warn({ killed }, 'killed every subprocess');
  };
  const signal = await waitForShutdownSignal(forceExit, log);
  log.info(
    { signal, drain_timeout_ms: config.drainTimeoutMs },
    'draining: running turns get the drain timeout, then every session is suspended',
  );
  const deadline = setTimeout(() => {
    log.error('the drain missed its deadline; exiting now');
    forceExit();
    process.exit(1);
  }, config.drainTimeoutMs + DRAIN_MARGIN_MS);
  deadline.unref();
  const result = await server.drain().finally(async () => {
    clearTimeout(deadline);
    // The drain's spans too; bounded (tracing.ts), so a collector that is down cannot hold up the exit.
    await closeTelemetry();
  });
  const drained = {
    suspended: result.suspended,
    failed: result.failed,
    stopped_turns: result.stoppedTurns,
  };
  if (result.failed === 0) log.info(drained, 'drained');
  else log.error(drained, 'drained, but some sessions could not be suspended');
  return result.failed === 0 ? 0 : 1;
}

/**
 * What `berth serve` logs once it listens, one line per topic; URLs without their passwords. The first
 * line's message is `listening on URL` whatever the format, so a script can wait for it.
 */
export function logStartup(log: Logger, server: BerthServer, config: ServeConfig): void {
  for (const warning of config.warnings) log.warn(warning);
  log.info({ url: server.url, metrics_url: server.metricsUrl }, `listening on ${server.url}`);
  const { mockModel } = server;
  const model = mockModel
    ? `the built-in scripted model at ${mockModel.url} (no ANTHROPIC_API_KEY set: agents get scripted replies; set it, or --model-endpoint, for a real model)`
    : redactUrl(config.modelEndpoint ?? '');
  log.info({ scripted: mockModel !== undefined }, `model: ${model}`);
  if (mockModel) {
    const names = mockModel.scenarioNames;
    const source = config.mockScript
      ? `${names.length} scenario(s) from ${config.mockScript}`
      : 'the built-in scenarios (say "help" to an agent; docs/scripted-model.md)';
    log.info({ scenarios: names }, `scripted model: ${source}: ${names.join(', ') || 'none'}`);
  }
  const auth =
    config.apiKeys.size > 0
      ? `${config.apiKeys.size} API key(s)`
      : 'no API keys (tenant "default", loopback only)';
  const blob = config.blobStore === null ? 'the data dir' : redactUrl(config.blobStore);
  log.info(
    { store: config.store, blob_store: blob, data_dir: config.dataDir },
    `store: ${redactUrl(config.store)}; blob store: ${blob}; data dir: ${config.dataDir}; auth: ${auth}`,
  );
  const info = server.host.info();
  const capacity = info.capacity.agents_per_host;
  log.info(
    { capacity, warm_pool: info.warm_pool.size, pattern: config.pattern },
    `capacity: ${capacity} agent subprocess(es); warm pool: ${info.warm_pool.size}; pattern: ${config.pattern}`,
  );
  log.info(`agents: ${server.confinement}`);
  if (config.cluster) {
    const { hostId, advertiseUrl, leaseTtlMs } = config.cluster;
    log.info(
      {
        host_id: hostId,
        advertise_url: advertiseUrl,
        lease_ttl_ms: leaseTtlMs,
        live_hosts: server.liveHosts,
      },
      `multi-host: host ${hostId} at ${advertiseUrl}; lease ttl ${leaseTtlMs} ms; ${server.liveHosts} live host(s)`,
    );
  }
  const { otlpTracesUrl, otlpEndpoint, agentTelemetry } = config.observe;
  if (otlpTracesUrl) {
    log.info({ endpoint: otlpTracesUrl }, `traces: OTLP to ${redactUrl(otlpTracesUrl)}`);
  }
  if (agentTelemetry && otlpEndpoint) {
    log.info(
      { agent_telemetry: true, endpoint: otlpEndpoint },
      `agent telemetry: each agent's CLI sends its metrics and events to ${redactUrl(otlpEndpoint)}`,
    );
  }
}
