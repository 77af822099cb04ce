import type { Logger } from '../observe/logger.js';

/**
 * Resolves on the first SIGINT or SIGTERM. A second one calls `onForce` (which must end every subprocess
 * group at once, synchronously) and exits with status 1.
 */
export function waitForShutdownSignal(
  onForce: () => void = () => undefined,
  log?: Pick<Logger, 'warn'>,
): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      const force = (): never => {
        const message = 'second signal: killing every subprocess and exiting now';
        if (log) log.warn(message);
        else process.stderr.write(`berth: ${message}\n`);
        onForce();
        process.exit(1);
      };
      process.once('SIGINT', force);
      process.once('SIGTERM', force);
      resolve(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}
