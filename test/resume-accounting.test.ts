/**
 * A session's usage and cost add up exactly across the subprocesses that serve it. The CLI reports a
 * cumulative `total_cost_usd`, and a CLI that resumes a session restores the total of that session's last
 * process (from its config), so without care the first turn after a restart, a recycle or a hydrate would
 * be charged the whole earlier conversation again.
 */
import { readdir } from 'node:fs/promises';
import os from 'node:os';
import { afterAll, expect, it } from 'vitest';
import type { StoredEvent } from '../src/session/events.js';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { TestBerth } from './helpers/berth.js';

let model: MockModel | undefined;
afterAll(async () => {
  await model?.close();
});

function turnCost(events: readonly StoredEvent[]): number {
  const idle = events.findLast((e) => e.type === 'session.status_idle');
  const usage = (idle as { usage?: { cost_usd: number } } | undefined)?.usage;
  if (!usage) throw new Error(`no usage on the turn's status_idle: ${JSON.stringify(idle)}`);
  return usage.cost_usd;
}

async function resumeDirs(): Promise<Set<string>> {
  return new Set((await readdir(os.tmpdir())).filter((name) => name.startsWith('claude-resume-')));
}

it('charges each turn once across a restart, a recycle and a hydrate after a drain', async () => {
  model = await startMockModel();
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
    expect((await third.api('GET', `/v1/sessions/${id}`)).body.status).toBe('suspended');
    costs.push(turnCost(await third.turn(id, 'turn five')));

    // Each turn sends about as many tokens as the first (the conversation grows a little each turn),
    // so it costs about as much: never the earlier turns' cost again.
    const unit = Math.max(costs[0]!, costs[1]!);
    expect(unit).toBeGreaterThan(0);
    for (const cost of costs) {
      expect(cost, JSON.stringify(costs)).toBeGreaterThan(0);
      expect(cost, JSON.stringify(costs)).toBeLessThan(unit * 1.5);
    }
    const record = (await third.api('GET', `/v1/sessions/${id}`)).body as {
      turns: number;
      usage: { cost_usd: number };
    };
    expect(record.turns).toBe(5);
    expect(record.usage.cost_usd).toBeCloseTo(
      costs.reduce((a, b) => a + b, 0),
      9,
    );
    // Every resumed subprocess ran in the tenant's config dir: no directory of the SDK's is left.
    const left = [...(await resumeDirs())].filter((name) => !before.has(name));
    expect(left).toEqual([]);
  } finally {
    for (const server of servers) await server.stop();
    await first.dispose();
  }
});
