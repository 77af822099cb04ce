import { createLogger, type Logger } from '../observe/logger.js';
import { redactUrl } from '../redact.js';
import type { RouterConfig } from '../router/router-config.js';
import { startRouter, type RouterServer } from '../router/start-router.js';
import { waitForShutdownSignal } from './signals.js';

/** Runs `berth router` until SIGTERM or SIGINT. */
export async function runRouterCommand(config: RouterConfig): Promise<number> {
  const log = await createLogger({
    level: config.logLevel,
    ...(config.logFormat && { format: config.logFormat }),
  });
  const router = await startRouter(config, { log });
  logRouterStartup(log, router, config);
  // A second signal exits at once (signals.ts): the router holds no state worth waiting for.
  const signal = await waitForShutdownSignal(undefined, log);
  log.info({ signal }, 'router stopping');
  await router.close();
  return 0;
}

/** What `berth router` logs once it listens; the store URL without its password. */
export function logRouterStartup(log: Logger, router: Pick<RouterServer, 'url'>, config: RouterConfig): void {
  const auth =
    config.apiKeys.size > 0
      ? `${config.apiKeys.size} API key(s)`
      : 'no API keys (tenant "default", loopback only)';
  for (const warning of config.warnings) log.warn(warning);
  log.info(
    { url: router.url, store: config.store, refresh_ms: config.refreshMs },
    `router listening on ${router.url} (store ${redactUrl(config.store)}; auth: ${auth}; host list refreshed every ${config.refreshMs} ms)`,
  );
}
