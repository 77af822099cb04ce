/**
 * Per-tenant budgets and stored-session limits (`--tenant-limits usd=,sessions=`), through the API with
 * the real CLI and the scripted model. The model proxy meters alpha's spend from the replies; the turn that
 * spends its budget ends with `session.error` `budget_exceeded` (its next model request is refused at the
 * proxy, never forwarded), alpha's new turns and tasks get `429 budget_exceeded` with nothing stored, also
 * after a restart, while beta goes on working; beta's `sessions=1` refuses a second session.
 */
import { rm } from 'node:fs/promises';
import { afterAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from './helpers/api-events.js';
import { credentialFingerprint, startMockModel, type MockModel } from '../src/testing/index.js';
import { TestBerth } from './helpers/berth.js';

const REAL_KEY = 'sk-ant-real-key-for-the-budget-test';
const ALPHA = { authorization: 'Bearer alpha-key-0001' };
const BETA = { authorization: 'Bearer beta-key-0002' };
// The CLI asks for claude-opus-5-5 ($4 / $20 per million tokens): 50,000 output tokens are $1 and more.
const ARGS = [
  '--api-keys',
  'alpha:alpha-key-0001,beta:beta-key-0002',
  '--tenant-limits',
  'alpha:usd=0.5;beta:sessions=1',
];

let model: MockModel | undefined;
afterAll(async () => {
  await model?.close();
});

/** Sends a message and waits for the end of its turn; the turn's events. */
async function turn(
  berth: TestBerth,
  id: string,
  content: string,
  headers: Record<string, string>,
): Promise<ApiEvent[]> {
  const [sent] = await berth.send(id, [{ type: 'user.message', content }], headers);
  const deadline = Date.now() + 60_000;
  for (;;) {
    const events = (await berth.history(id, headers)).filter((e) => e.seq > sent!.seq);
    const idle = events.find((e) => e.type === 'session.status_idle');
    if (idle) return events.filter((e) => e.seq <= idle.seq);
    if (Date.now() > deadline)
      throw new Error(`the turn did not end: ${events.map((e) => e.type).join(', ')}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe('--tenant-limits usd and sessions', () => {
  it('ends the turn that spends the budget, refuses the tenant new turns across a restart, and leaves others alone', async () => {
    model ??= await startMockModel({
      scenarios: [
        {
          match: { userText: 'spend a lot' },
          steps: [
            { toolUse: { name: 'Bash', input: { command: 'echo spent' } }, usage: { output_tokens: 50_000 } },
            { text: 'this reply is never asked for' },
          ],
        },
      ],
    });
    const env = { ANTHROPIC_API_KEY: REAL_KEY };
    let berth = await TestBerth.start({ model, args: ARGS, env });
    const dataDir = berth.dataDir;
    try {
      const alpha = await berth.createSession({ allow: ['bash'] }, ALPHA);
      const before = model.requests.length;
      const events = await turn(berth, alpha, 'spend a lot', ALPHA);
      // The first reply spent the budget; the request that carried the tool's result was refused.
      expect(events.filter((e) => e.type === 'session.error').map((e) => e.error.code)).toEqual([
        'budget_exceeded',
      ]);
      expect(events.at(-1)).toMatchObject({ stop_reason: { type: 'budget_reached' } });
      const error = events.find((e) => e.type === 'session.error')!;
      expect(error.type === 'session.error' && error.error.message).toContain('budget of $0.5');
      expect(events.some((e) => e.type === 'agent.tool_result')).toBe(true);
      expect(model.requests.slice(before).filter((r) => r.isMain)).toHaveLength(1);

      // A new turn of alpha: 429 budget_exceeded, nothing stored.
      const stored = (await berth.history(alpha, ALPHA)).length;
      const refused = await berth.api(
        'POST',
        `/v1/sessions/${alpha}/events`,
        { events: [{ type: 'user.message', content: [{ type: 'text', text: 'one more' }] }] },
        ALPHA,
      );
      expect(refused.status).toBe(429);
      expect(refused.body.error).toMatchObject({
        type: 'rate_limit_error',
        details: { error_code: 'budget_exceeded' },
      });
      expect(refused.body.error.message).toContain('usd=0.5');
      expect((await berth.history(alpha, ALPHA)).length).toBe(stored);
      const task = await berth.api('POST', '/v1/tasks', { prompt: 'a task' }, ALPHA);
      expect(task.status).toBe(429);
      expect(task.body.error.details.error_code).toBe('budget_exceeded');

      // Beta is not alpha: its turns run. At its `sessions=1`, a second session is refused, nothing stored.
      const beta = await berth.createSession({}, BETA);
      const betaTurn = await turn(berth, beta, 'hello from beta', BETA);
      expect(betaTurn.filter((e) => e.type === 'session.error')).toEqual([]);
      expect(betaTurn.at(-1)).toMatchObject({ stop_reason: { type: 'end_turn' } });
      const second = await berth.api(
        'POST',
        '/v1/sessions',
        await berth.sessionBody({ id: 'beta-second' }, BETA),
        BETA,
      );
      expect(second.status).toBe(429);
      expect(second.body.error.details.error_code).toBe('quota_exceeded');
      expect(second.body.error.message).toContain('sessions=1');
      const list = await berth.api<{ data: Array<{ id: string }> }>('GET', '/v1/sessions', undefined, BETA);
      expect(list.body.data.map((s) => s.id)).toEqual([beta]);
      expect((await berth.api('GET', '/v1/sessions/beta-second', undefined, BETA)).status).toBe(404);

      // Every request the model saw carried the real key, never an agent's token.
      expect(new Set(model.requests.map((r) => r.credential))).toEqual(
        new Set([credentialFingerprint(REAL_KEY)]),
      );

      // The spend survives a restart: the new host starts from what alpha's stored sessions cost.
      await berth.stop();
      berth = await TestBerth.start({ model, args: ARGS, env, dataDir });
      const again = await berth.api(
        'POST',
        `/v1/sessions/${alpha}/events`,
        { events: [{ type: 'user.message', content: [{ type: 'text', text: 'after the restart' }] }] },
        ALPHA,
      );
      expect(again.status).toBe(429);
      expect(again.body.error.details.error_code).toBe('budget_exceeded');
      expect((await berth.history(alpha, ALPHA)).length).toBe(stored);
      expect((await turn(berth, beta, 'beta again', BETA)).filter((e) => e.type === 'session.error')).toEqual(
        [],
      );
    } finally {
      await berth.dispose();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
