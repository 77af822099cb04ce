/**
 * `GET /metrics`: the host's figures in Prometheus' text format (prom-client), read from the host at
 * each scrape. What a HorizontalPodAutoscaler scales hosts on is here: `berth_slots_used_ratio`, the
 * share of the sizing formula's slots in use. The process's own figures (CPU, memory, event loop) come
 * from prom-client's default metrics.
 */
import { Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import type { HostInfo } from '../host/host-info.js';

export function hostMetrics(info: () => HostInfo): Registry {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  new Gauge({
    name: 'berth_slots',
    help: 'Subprocess slots (the sizing formula: (host RAM - overhead) / per-session ceiling) by state',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const { slots } = info();
      this.set({ state: 'used' }, slots.used);
      if (slots.free !== null) this.set({ state: 'free' }, slots.free);
    },
  });
  new Gauge({
    name: 'berth_slots_used_ratio',
    help: 'Share of the subprocess slots in use (0-1): what hosts are scaled on',
    registers: [registry],
    collect() {
      const { slots, capacity } = info();
      const total = capacity.agents_per_host;
      this.set(total ? Math.min(1, slots.used / total) : 0);
    },
  });
  new Gauge({
    name: 'berth_sessions',
    help: 'Sessions loaded on this host, by state (running: a turn in progress; suspended: holding no slot)',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const { sessions } = info();
      this.set({ state: 'loaded' }, sessions.loaded);
      this.set({ state: 'running' }, sessions.running);
      this.set({ state: 'suspended' }, sessions.suspended);
    },
  });
  new Gauge({
    name: 'berth_host_ready',
    help: '1 while the host admits work, 0 while it drains',
    registers: [registry],
    collect() {
      this.set(info().status === 'ready' ? 1 : 0);
    },
  });
  return registry;
}
