import type { ServeConfig } from '../config.js';
import { startBerth } from '../server.js';
import { waitForShutdownSignal } from './signals.js';

export async function runServeCommand(config: ServeConfig): Promise<number> {
  const server = await startBerth(config);
  const model = server.mockModel
    ? `the built-in scripted model at ${server.mockModel.url} (no ANTHROPIC_API_KEY set: agents get scripted replies; set it, or --model-endpoint, for a real model)`
    : config.modelEndpoint;
  const auth =
    config.apiKeys.size > 0
      ? `${config.apiKeys.size} API key(s)`
      : 'no API keys (tenant "default", loopback only)';
  process.stderr.write(
    `berth: listening on ${server.url}\n` +
      `berth: model: ${model}\n` +
      `berth: store: ${config.store}; data dir: ${config.dataDir}; auth: ${auth}\n`,
  );
  const signal = await waitForShutdownSignal();
  process.stderr.write(`berth: ${signal}: stopping sessions (they stay resumable)\n`);
  await server.close();
  return 0;
}
