/**
 * Where a session lives when no host holds its lease: weighted rendezvous (highest-random-weight)
 * hashing of (tenant, session id) over the live hosts. Every router and host computes the same order
 * from the same host list, with no shared state. Adding a host moves only the sessions that now score
 * highest on it (about capacity share of them); removing one moves only its own.
 *
 * The weight is the host's capacity: a host with twice the slots gets twice the sessions. The score is
 * `-capacity / ln(u)`, where `u` in (0, 1) is a hash of (key, host id): the largest score wins, and a
 * host's chance of winning is proportional to its weight (the logarithmic method of weighted
 * rendezvous hashing).
 */
import { createHash } from 'node:crypto';

/** What placement needs of a host (a `HostEntry` of stores/coordination.ts has it). */
export interface PlacedHost {
  id: string;
  /** Subprocess slots: the host's weight. */
  capacity: number;
  /** Only `ready` hosts are ranked. */
  state: string;
}

/** A hash of (key, host id) as a number in (0, 1), uniform. */
function unitHash(key: string, hostId: string): number {
  const digest = createHash('sha256').update(key).update('\0').update(hostId).digest();
  // 52 bits, shifted into (0, 1): never 0 (ln 0) nor 1 (ln 1 = 0).
  const high = digest.readUInt32BE(0) >>> 12; // 20 bits
  const low = digest.readUInt32BE(4); // 32 bits
  return (high * 2 ** 32 + low + 0.5) / 2 ** 52;
}

/** The host's score for the key: higher wins. */
export function rendezvousScore(key: string, host: Pick<PlacedHost, 'id' | 'capacity'>): number {
  const weight = Math.max(host.capacity, 1);
  return -weight / Math.log(unitHash(key, host.id));
}

/** The routing key of a session: its tenant and id (ids are unique per tenant only). */
export function routingKey(tenant: string, sessionId: string): string {
  return `${tenant}/${sessionId}`;
}

/**
 * The hosts in the order a session tries them: best first. Only `ready` hosts are ranked (a draining
 * host takes no new work); ties (impossible in practice) go to the smaller id.
 */
export function rankHosts<H extends PlacedHost>(key: string, hosts: readonly H[]): H[] {
  return hosts
    .filter((host) => host.state === 'ready')
    .map((host) => ({ host, score: rendezvousScore(key, host) }))
    .sort((a, b) => b.score - a.score || (a.host.id < b.host.id ? -1 : 1))
    .map(({ host }) => host);
}
