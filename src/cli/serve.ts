import type { ServeConfig } from '../config.js';
import { startBerth } from '../server.js';
import { waitForShutdownSignal } from './signals.js';

/** What a drain may take beyond its grace period (suspending every session) before the exit is forced. */
const DRAIN_MARGIN_MS = 30_000;

export async function runServeCommand(config: ServeConfig): Promise<number> {
  const server = await startBerth(config);
  const model = server.mockModel
    ? `the built-in scripted model at ${server.mockModel.url} (no ANTHROPIC_API_KEY set: agents get scripted replies; set it, or --model-endpoint, for a real model)`
    : config.modelEndpoint;
  const auth =
    config.apiKeys.size > 0
      ? `${config.apiKeys.size} API key(s)`
      : 'no API keys (tenant "default", loopback only)';
  const capacity = server.host.info().capacity.agents_per_host;
  process.stderr.write(
    `berth: listening on ${server.url}\n` +
      `berth: model: ${model}\n` +
      `berth: store: ${config.store}; data dir: ${config.dataDir}; auth: ${auth}\n` +
      `berth: capacity: ${capacity} agent subprocess(es); warm pool: ${config.warmPool}; pattern: ${config.pattern}\n`,
  );
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
