import type { ServeConfig } from '../config.js';
import { redactUrl } from '../redact.js';
import { startBerth, type BerthServer } from '../server.js';
import { waitForShutdownSignal } from './signals.js';

/** What a drain may take beyond its grace period (suspending every session) before the exit is forced. */
const DRAIN_MARGIN_MS = 30_000;

export async function runServeCommand(config: ServeConfig): Promise<number> {
  const server = await startBerth(config);
  process.stderr.write(startupLines(server, config));
  const forceExit = (): void => {
    const killed = server.host.killAllNow();
    process.stderr.write(`berth: killed ${killed} subprocess(es)\n`);
  };
  const signal = await waitForShutdownSignal(forceExit);
  process.stderr.write(
    `berth: ${signal}: draining (running turns get ${config.drainTimeoutMs} ms, then every session is suspended)\n`,
  );
  const deadline = setTimeout(() => {
    process.stderr.write('berth: the drain missed its deadline; exiting now\n');
    forceExit();
    process.exit(1);
  }, config.drainTimeoutMs + DRAIN_MARGIN_MS);
  deadline.unref();
  const result = await server.drain();
  clearTimeout(deadline);
  process.stderr.write(
    `berth: drained: ${result.suspended} session(s) suspended, ${result.failed} failed, ${result.stoppedTurns} turn(s) stopped\n`,
  );
  return result.failed === 0 ? 0 : 1;
}

/** What `berth serve` prints once it listens; URLs without their passwords (the terminal may be a log). */
export function startupLines(server: BerthServer, config: ServeConfig): string {
  const model = server.mockModel
    ? `the built-in scripted model at ${server.mockModel.url} (no ANTHROPIC_API_KEY set: agents get scripted replies; set it, or --model-endpoint, for a real model)`
    : redactUrl(config.modelEndpoint ?? '');
  const auth =
    config.apiKeys.size > 0
      ? `${config.apiKeys.size} API key(s)`
      : 'no API keys (tenant "default", loopback only)';
  const blob = config.blobStore === null ? 'the data dir' : redactUrl(config.blobStore);
  const capacity = server.host.info().capacity.agents_per_host;
  const pool = server.host.info().warm_pool.size;
  return (
    config.warnings.map((warning) => `berth: warning: ${warning}\n`).join('') +
    `berth: listening on ${server.url}\n` +
    `berth: model: ${model}\n` +
    `berth: store: ${redactUrl(config.store)}; blob store: ${blob}; data dir: ${config.dataDir}; auth: ${auth}\n` +
    `berth: capacity: ${capacity} agent subprocess(es); warm pool: ${pool}; pattern: ${config.pattern}\n` +
    `berth: agents: ${server.confinement}\n` +
    (config.cluster
      ? `berth: multi-host: host ${config.cluster.hostId} at ${config.cluster.advertiseUrl}; lease ttl ${config.cluster.leaseTtlMs} ms; ${server.liveHosts} live host(s)\n`
      : '')
  );
}
