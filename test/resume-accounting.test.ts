/**
 * A session's usage and cost add up exactly across the subprocesses that serve it. The CLI reports a
 * cumulative `total_cost_usd`, and a CLI that resumes a session restores the total of that session's last
 * process (from its config), so without care the first turn after a restart, a recycle or a hydrate would
 * be charged the whole earlier conversation again.
 */
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import { afterAll, expect, it } from 'vitest';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import type { ApiEvent, ApiSession } from './helpers/api-events.js';
import { TestBerth } from './helpers/berth.js';

let model: MockModel | undefined;
afterAll(async () => {
  await model?.close();
});

function turnCost(events: readonly ApiEvent[]): number {
  const idle = events.findLast((e) => e.type === 'session.status_idle');
  const usage = idle?.type === 'session.status_idle' ? idle.usage : undefined;
  if (!usage) throw new Error(`no usage on the turn's status_idle: ${JSON.stringify(idle)}`);
  return usage.cost_usd;
}

async function resumeDirs(): Promise<Set<string>> {
  return new Set((await readdir(os.tmpdir())).filter((name) => name.startsWith('claude-resume-')));
}

it('charges each turn once across a restart, a recycle and a hydrate after a drain', async () => {
  // Estimated token counts: each turn must cost something for the test to tell its cost from the others'.
  model = await startMockModel({ usage: 'estimate' });
  const before = await resumeDirs();
  const first = await TestBerth.start({ model, args: ['--recycle-after-turns', '3'] });
  const servers: TestBerth[] = [];
  try {
    const id = await first.createSession({ title: 'accounting' });
    const costs: number[] = [];
    costs.push(turnCost(await first.turn(id, 'turn one')));
    costs.push(turnCost(await first.turn(id, 'turn two')));
    await first.stop();

    // A restart on the same data dir: the CLI resumes the session and restores its earlier total.
    const second = await TestBerth.start({
      model,
      dataDir: first.dataDir,
      args: ['--recycle-after-turns', '1'],
    });
    servers.push(second);
    costs.push(turnCost(await second.turn(id, 'turn three')));
    // --recycle-after-turns 1: that subprocess is replaced at the turn boundary; the next one resumes.
    await expect
      .poll(() => second.server.host.liveSessions[0]?.currentState, { timeout: 30_000 })
      .toBe('cold');
    costs.push(turnCost(await second.turn(id, 'turn four')));
    expect((await second.server.drain()).suspended).toBe(1);
    await second.stop();

    // The drained host suspended the session; the next one hydrates it and resumes.
    const third = await TestBerth.start({ model, dataDir: first.dataDir });
    servers.push(third);
    expect((await third.api<ApiSession>('GET', `/v1/sessions/${id}`)).body.berth.status).toBe('suspended');
    costs.push(turnCost(await third.turn(id, 'turn five')));

    // Each turn sends about as many tokens as the first (the conversation grows a little each turn),
    // so it costs about as much: never the earlier turns' cost again.
    const unit = Math.max(costs[0]!, costs[1]!);
    expect(unit).toBeGreaterThan(0);
    for (const cost of costs) {
      expect(cost, JSON.stringify(costs)).toBeGreaterThan(0);
      expect(cost, JSON.stringify(costs)).toBeLessThan(unit * 1.5);
    }
    const session = (await third.api<ApiSession>('GET', `/v1/sessions/${id}`)).body;
    const total = costs.reduce((a, b) => a + b, 0);
    expect(session.berth.turns).toBe(5);
    expect(session.berth.cost_usd).toBeCloseTo(total, 9);
    // The list cost is the same total in whole cents.
    expect(session.usage.list_cost).toEqual({ amount: String(Math.round(total * 100)), currency: 'USD' });
    // Every resumed subprocess ran in the tenant's config dir: no directory of the SDK's is left.
    const left = [...(await resumeDirs())].filter((name) => !before.has(name));
    expect(left).toEqual([]);
  } finally {
    for (const server of servers) await server.stop();
    await first.dispose();
  }
});
