/**
 * `GET /metrics`: Prometheus' text format with the slots a HorizontalPodAutoscaler scales on
 * (deploy/kubernetes/hpa.yaml), read from the host at each scrape; behind an API key when keys are
 * configured, unless `--metrics-public`.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TestBerth } from './helpers/berth.js';

let berth: TestBerth | undefined;
afterEach(async () => {
  await berth?.dispose();
  berth = undefined;
});

async function scrape(
  headers: Record<string, string> = {},
): Promise<{ status: number; text: string; type: string }> {
  const res = await fetch(`${berth!.url}/metrics`, { headers });
  return { status: res.status, text: await res.text(), type: res.headers.get('content-type') ?? '' };
}

function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

describe('GET /metrics', () => {
  it('shows the slots in use, their share, and the sessions, as the host has them at the scrape', async () => {
    berth = await TestBerth.start({
      args: ['--warm-pool', '0', '--host-ram', '4GiB', '--host-overhead', '1GiB'],
    });
    const idle = await scrape();
    expect(idle.status).toBe(200);
    expect(idle.type).toMatch(/^text\/plain; version=0\.0\.4/);
    expect(sample(idle.text, 'berth_slots{state="used"}')).toBe(0);
    expect(sample(idle.text, 'berth_slots{state="free"}')).toBe(3);
    expect(sample(idle.text, 'berth_slots_used_ratio')).toBe(0);
    expect(sample(idle.text, 'berth_host_ready')).toBe(1);
    expect(idle.text).toContain('process_resident_memory_bytes');

    const id = await berth.createSession();
    await berth.turn(id, 'hello metrics');
    const busy = await scrape();
    expect(sample(busy.text, 'berth_slots{state="used"}')).toBe(1);
    expect(sample(busy.text, 'berth_slots_used_ratio')).toBeCloseTo(1 / 3);
    expect(sample(busy.text, 'berth_sessions{state="loaded"}')).toBe(1);
  });

  it('needs an API key when keys are configured, unless --metrics-public', async () => {
    const keys = ['--api-keys', 'acme:sk-metrics-test-key-0001'];
    berth = await TestBerth.start({ args: [...keys, '--warm-pool', '0'] });
    expect((await scrape()).status).toBe(401);
    expect((await scrape({ authorization: 'Bearer wrong-key-wrong-key' })).status).toBe(401);
    expect((await scrape({ authorization: 'Bearer sk-metrics-test-key-0001' })).status).toBe(200);
    await berth.dispose();
    berth = await TestBerth.start({ args: [...keys, '--warm-pool', '0', '--metrics-public'] });
    expect((await scrape()).status).toBe(200);
  });
});
