import { redactUrl } from '../redact.js';
import type { RouterConfig } from '../router/router-config.js';
import { startRouter, type RouterServer } from '../router/start-router.js';
import { waitForShutdownSignal } from './signals.js';

/** Runs `berth router` until SIGTERM or SIGINT. */
export async function runRouterCommand(config: RouterConfig): Promise<number> {
  const router = await startRouter(config);
  process.stderr.write(routerStartupLines(router, config));
  // A second signal exits at once (signals.ts): the router holds no state worth waiting for.
  const signal = await waitForShutdownSignal();
  process.stderr.write(`berth: ${signal}: router stopping\n`);
  await router.close();
  return 0;
}

/** What `berth router` prints once it listens; the store URL without its password. */
export function routerStartupLines(router: Pick<RouterServer, 'url'>, config: RouterConfig): string {
  const auth =
    config.apiKeys.size > 0
      ? `${config.apiKeys.size} API key(s)`
      : 'no API keys (tenant "default", loopback only)';
  return (
    config.warnings.map((warning) => `berth: warning: ${warning}\n`).join('') +
    `berth: router listening on ${router.url} (store ${redactUrl(config.store)}; auth: ${auth}; host list refreshed every ${config.refreshMs} ms)\n`
  );
}
