/**
 * Whose subprocess a spawner starts: the sandbox picks the tenant's uid and the domains the agent may
 * reach from it, and the model proxy accounts the process's model use to it.
 */
import { BerthError } from '../errors.js';

export interface SpawnOwner {
  tenant: string;
  /** The session or task the process serves; absent for a warm spare, which serves no one yet. */
  id?: string | undefined;
  /** Domains the agent may reach over HTTPS (its `agent.network.allowed_domains`); none when absent. */
  allowedDomains?: readonly string[] | undefined;
  /** Its tree's memory limit (its `agent.memory_bytes`), when lower than the host's; absent: the host's. */
  memoryBytes?: number | undefined;
}

/**
 * Refuses an agent config that asks for `network` on a host that cannot enforce it: accepted and
 * ignored, it would read as a restriction while the agent reaches whatever the server can.
 */
export function assertNetworkEnforced(agent: { network?: unknown } | undefined, enforced = false): void {
  if (agent?.network !== undefined && !enforced) {
    throw new BerthError(
      'invalid_request',
      'agent.network: allowed domains are enforced by the sandbox, and this host runs with --sandbox none (its agents reach whatever the server can)',
    );
  }
}
