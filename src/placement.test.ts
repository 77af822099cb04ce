import { describe, expect, it } from 'vitest';
import type { HostState } from './stores/coordination.js';
import { rankHosts, routingKey } from './placement.js';

interface TestHost {
  id: string;
  capacity: number;
  state: HostState;
}

const host = (id: string, capacity = 8, state: HostState = 'ready'): TestHost => ({ id, capacity, state });

const KEYS = Array.from({ length: 20_000 }, (_, i) => routingKey(`tenant${i % 7}`, `sess_${i}`));

/** How many of `KEYS` each host wins. */
function winners(hosts: readonly TestHost[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const key of KEYS) {
    const best = rankHosts(key, hosts)[0]!.id;
    counts.set(best, (counts.get(best) ?? 0) + 1);
  }
  return counts;
}

describe('rankHosts', () => {
  it('gives the same order for the same key and hosts, whatever order the hosts come in', () => {
    const hosts = [host('a'), host('b'), host('c'), host('d')];
    const first = rankHosts('default/sess_1', hosts).map((h) => h.id);
    expect(rankHosts('default/sess_1', hosts).map((h) => h.id)).toEqual(first);
    expect(rankHosts('default/sess_1', [...hosts].reverse()).map((h) => h.id)).toEqual(first);
    expect([...first].sort()).toEqual(['a', 'b', 'c', 'd']);
    // Different keys do not all get the same order (the hash is of the key too).
    const orders = new Set(
      KEYS.slice(0, 50).map((key) =>
        rankHosts(key, hosts)
          .map((h) => h.id)
          .join(),
      ),
    );
    expect(orders.size).toBeGreaterThan(10);
  });

  it('routes by tenant and id: the same id of two tenants is two keys', () => {
    expect(routingKey('alpha', 'sess_1')).not.toBe(routingKey('beta', 'sess_1'));
  });

  it('spreads keys over equal hosts evenly', () => {
    const counts = winners([host('a'), host('b'), host('c')]);
    for (const id of ['a', 'b', 'c']) expect(counts.get(id)! / KEYS.length).toBeCloseTo(1 / 3, 1);
  });

  it('gives a host with twice the capacity twice the keys, within 10%', () => {
    const counts = winners([host('small-1', 8), host('big', 16), host('small-2', 8)]);
    const ratio = counts.get('big')! / ((counts.get('small-1')! + counts.get('small-2')!) / 2);
    expect(ratio).toBeGreaterThan(1.8);
    expect(ratio).toBeLessThan(2.2);
  });

  it('moves about a quarter of the keys when a fourth equal host joins three, all to the new host', () => {
    const three = [host('a'), host('b'), host('c')];
    const four = [...three, host('d')];
    let moved = 0;
    for (const key of KEYS) {
      const before = rankHosts(key, three)[0]!.id;
      const after = rankHosts(key, four)[0]!.id;
      if (before === after) continue;
      moved++;
      expect(after).toBe('d');
    }
    expect(moved / KEYS.length).toBeGreaterThan(0.225);
    expect(moved / KEYS.length).toBeLessThan(0.275);
  });

  it('moves only the keys of a host that leaves', () => {
    const four = [host('a'), host('b'), host('c'), host('d')];
    const three = four.filter((h) => h.id !== 'c');
    for (const key of KEYS.slice(0, 5000)) {
      const before = rankHosts(key, four)[0]!.id;
      if (before !== 'c') expect(rankHosts(key, three)[0]!.id).toBe(before);
    }
  });

  it('leaves draining hosts out', () => {
    const hosts = [host('a'), host('b', 8, 'draining'), host('c')];
    for (const key of KEYS.slice(0, 2000)) {
      expect(rankHosts(key, hosts).map((h) => h.id)).not.toContain('b');
    }
    expect(rankHosts('default/x', [host('b', 8, 'draining')])).toEqual([]);
  });
});
