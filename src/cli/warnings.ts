import type { Logger } from '../observe/logger.js';

/**
 * Process warnings as the CLI prints them. The SDK warns (CLAUDE_SDK_CAN_USE_TOOL_SHADOWED) on every
 * subprocess start of a session whose `agent.allowed_tools` are set, because those tools skip the
 * permission callback. That is Berth's documented behaviour (allowed tools never ask), so the warning
 * says nothing an operator can act on and would fill the log; every other warning is printed as usual.
 */
const EXPECTED_WARNINGS: ReadonlySet<string> = new Set(['CLAUDE_SDK_CAN_USE_TOOL_SHADOWED']);

export function filterProcessWarnings(log?: Pick<Logger, 'warn'>): void {
  // Node prints warnings through its own 'warning' listener, which it does not install under
  // --no-warnings or NODE_NO_WARNINGS=1; replace it, when it is there, with one that skips ours.
  if (process.listenerCount('warning') === 0) return;
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error & { code?: string }) => {
    if (warning.code !== undefined && EXPECTED_WARNINGS.has(warning.code)) return;
    if (log) log.warn({ warning: warning.name, code: warning.code }, warning.message);
    else process.stderr.write(`${warning.name}: ${warning.message}\n`);
  });
}
