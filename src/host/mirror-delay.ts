/** What a session's clients are told when the durable mirror cannot ship its transcript entries. */
import { describeError } from '../errors.js';
import type { SessionHost } from './session-host.js';

/**
 * Tells a session's clients, once per outage, that its transcript entries wait on this host because the
 * store is not accepting them. Keys are the transcript store's: the tenant and the SDK session id.
 */
export function reportMirrorDelay(
  host: SessionHost,
  tenant: string,
  sdkSessionId: string,
  cause: unknown,
): void {
  const session = host.liveSessions.find(
    (s) => s.snapshot.tenant === tenant && s.snapshot.sdkSessionId === sdkSessionId,
  );
  session?.events.emit({
    type: 'session.error',
    error: {
      type: 'mirror_delayed',
      message: `Mirroring to the transcript store is delayed (${describeError(cause)}); entries are kept on this host and shipped when the store is back.`,
    },
  });
}
