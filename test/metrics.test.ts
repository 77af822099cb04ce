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

/** Scrapes until `series` reads `value` (a gauge that follows an event on the server side). */
async function waitForSample(series: string, value: number): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (sample((await scrape()).text, series) !== value) {
    if (Date.now() > deadline) throw new Error(`${series} did not reach ${value}`);
    await new Promise((r) => setTimeout(r, 25));
  }
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
    expect(sample(busy.text, 'berth_sessions{status="idle"}')).toBe(1);
  });

  it('counts a turn: its start, duration, model use, HTTP requests and open streams, with bounded labels', async () => {
    // Estimated token counts: a scripted reply otherwise uses none, and the meter would count 0.
    berth = await TestBerth.start({ args: ['--warm-pool', '0'], modelUsage: 'estimate' });
    const id = await berth.createSession();
    const stream = berth.stream(id);
    await waitForSample('berth_sse_clients', 1);
    await berth.turn(id, 'hello metrics');
    stream.close();
    const { text } = await scrape();
    // A cold start and one turn that ended well.
    expect(sample(text, 'berth_session_start_seconds_count{kind="cold"}')).toBe(1);
    expect(sample(text, 'berth_session_start_seconds_sum{kind="cold"}')).toBeGreaterThan(0);
    expect(sample(text, 'berth_turn_duration_seconds_count{stop_reason="end_turn"}')).toBe(1);
    // The model proxy saw the CLI's requests, and metered the reply's tokens and cost.
    expect(sample(text, 'berth_model_requests_total{tenant="default",status="200"}')).toBeGreaterThanOrEqual(
      1,
    );
    expect(sample(text, 'berth_model_tokens_total{tenant="default",kind="output"}')).toBeGreaterThan(0);
    expect(sample(text, 'berth_model_cost_usd_total{tenant="default"}')).toBeGreaterThan(0);
    // The route's pattern, never the session's id.
    expect(
      sample(
        text,
        'berth_http_request_duration_seconds_count{method="POST",route="/v1/sessions/:id/events",status="200"}',
      ),
    ).toBe(1);
    expect(text).not.toContain(id);
    // Gauges read at the scrape; families that have seen nothing yet still announce themselves.
    expect(sample(text, 'berth_warm_spares')).toBe(0);
    expect(sample(text, 'berth_mirror_backlog_entries')).toBe(0);
    expect(sample(text, 'berth_mirror_oldest_seconds')).toBe(0);
    expect(sample(text, 'berth_subprocess_rss_bytes')).toBeGreaterThanOrEqual(0);
    for (const family of [
      'berth_store_errors_total',
      'berth_recycles_total',
      'berth_suspends_total',
      'process_cpu_seconds_total',
      'nodejs_eventloop_lag_seconds',
    ]) {
      expect(text).toContain(`# TYPE ${family} `);
    }
    // The stream's end is counted once it has closed on the server side.
    await waitForSample('berth_sse_clients', 0);
  });

  it('serves /metrics alone on --metrics-port, behind the same key', async () => {
    const keys = ['--api-keys', 'acme:sk-metrics-test-key-0002'];
    berth = await TestBerth.start({ args: [...keys, '--warm-pool', '0', '--metrics-port', '0'] });
    const metricsUrl = berth.server.metricsUrl!;
    expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(metricsUrl).not.toBe(berth.url);
    expect((await fetch(`${metricsUrl}/metrics`)).status).toBe(401);
    const res = await fetch(`${metricsUrl}/metrics`, {
      headers: { authorization: 'Bearer sk-metrics-test-key-0002' },
    });
    expect(res.status).toBe(200);
    expect(await res.text()).toContain('berth_slots_used_ratio');
    // Only /metrics: the API is not on this port.
    expect((await fetch(`${metricsUrl}/v1/sessions`)).status).toBe(404);
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

  it("shows a tenant's key its own model use and none of another tenant's", async () => {
    const acme = { authorization: 'Bearer sk-metrics-acme-key-0003' };
    const globex = { authorization: 'Bearer sk-metrics-globex-key-04' };
    const keys = ['--api-keys', 'acme:sk-metrics-acme-key-0003,globex:sk-metrics-globex-key-04'];
    berth = await TestBerth.start({ args: [...keys, '--warm-pool', '0'], modelUsage: 'estimate' });
    const id = await berth.createSession({}, acme);
    await berth.send(id, [{ type: 'user.message', content: [{ type: 'text', text: 'hello' }] }], acme);
    const deadline = Date.now() + 60_000;
    while (!(await berth.history(id, acme)).some((e) => e.type === 'session.status_idle')) {
      if (Date.now() > deadline) throw new Error('the turn did not end');
      await new Promise((r) => setTimeout(r, 50));
    }
    const own = (await scrape(acme)).text;
    expect(sample(own, 'berth_model_requests_total{tenant="acme",status="200"}')).toBeGreaterThanOrEqual(1);
    expect(sample(own, 'berth_model_cost_usd_total{tenant="acme"}')).toBeGreaterThan(0);
    const other = (await scrape(globex)).text;
    expect(other).not.toContain('tenant="acme"');
    // Host-wide series and the families' descriptions stay.
    expect(sample(other, 'berth_host_ready')).toBe(1);
    expect(other).toContain('# TYPE berth_model_cost_usd_total counter');
  });
});
