/**
 * What `GET /v1/hosts/self` and `/readyz` show of a host: the sizing formula's inputs and answer, the
 * slots in use, the sessions loaded, and the warm pool's counters. Public JSON: fields are added, never
 * renamed.
 */
import type { Session } from '../session/session.js';
import type { SlotCounts } from './admission.js';
import type { HostState } from './host-state.js';
import type { HostSizing } from './sizing.js';
import type { WarmPoolStats } from './warm-pool.js';

export interface HostInfo {
  /** `draining` from the first drain or close on (the host's exact state is `SessionHost.state`). */
  status: 'ready' | 'draining';
  capacity: {
    agents_per_host: number | null;
    host_ram_bytes: number | null;
    overhead_bytes: number | null;
    session_ceiling_bytes: number | null;
  };
  /** Subprocess trees held: sessions with a subprocess (or about to start one), warm spares and tasks. */
  slots: { used: number; sessions: number; spares: number; tasks: number; free: number | null };
  sessions: { loaded: number; running: number; suspended: number };
  warm_pool: WarmPoolStats & { size: number };
}

export function hostInfo(host: {
  state: HostState;
  capacity: number;
  sizing: HostSizing | undefined;
  slots: SlotCounts;
  sessions: readonly Session[];
  warmPool: WarmPoolStats & { size: number };
}): HostInfo {
  const { sizing, slots, sessions, capacity } = host;
  const finite = Number.isFinite(capacity);
  return {
    status: host.state === 'ready' ? 'ready' : 'draining',
    capacity: {
      agents_per_host: finite ? capacity : null,
      host_ram_bytes: sizing?.hostRamBytes ?? null,
      overhead_bytes: sizing?.overheadBytes ?? null,
      session_ceiling_bytes: sizing?.sessionCeilingBytes ?? null,
    },
    slots: { ...slots, free: finite ? Math.max(0, capacity - slots.used) : null },
    sessions: {
      loaded: sessions.length,
      running: sessions.filter((s) => s.isBusy).length,
      suspended: sessions.filter((s) => s.currentState === 'suspended').length,
    },
    warm_pool: host.warmPool,
  };
}
