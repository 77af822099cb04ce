/**
 * An environment's `limits.max_turns` (Berth's addition) with the real CLI in streaming-input mode: how
 * many agentic turns one user message may take, and what the API shows when a message reaches it.
 * (`limits.memory_bytes` needs a cgroup per agent: see test/sandbox.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { TestBerth, UNSANDBOXED, replyTexts } from './helpers/berth.js';

let model: MockModel;
let berth: TestBerth;

beforeAll(async () => {
  // Each `loop N` message: two tool calls before the answer, three agentic turns in all.
  const loop = (n: number) => ({
    match: { userText: `loop ${n}` },
    steps: [
      { toolUse: { name: 'Bash', input: { command: `echo first-${n}` } } },
      { toolUse: { name: 'Bash', input: { command: `echo second-${n}` } } },
      { text: `looped ${n}` },
    ],
  });
  model = await startMockModel({ scenarios: [loop(1), loop(2), loop(3)] });
  berth = await TestBerth.start({ model, args: [...UNSANDBOXED] });
});
afterAll(async () => {
  await berth?.dispose();
  await model?.close();
});

async function sessionIn(limits: Record<string, number>): Promise<string> {
  const env = await berth.api('POST', '/v1/environments', {
    name: 'limited',
    config: { type: 'cloud', limits },
  });
  expect(env.status, JSON.stringify(env.body)).toBe(200);
  expect(env.body.config.limits).toEqual(limits);
  const res = await berth.api('POST', '/v1/sessions', {
    agent: await berth.agent({ allow: ['bash'] }),
    environment_id: env.body.id,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.id as string;
}

describe('an environment with limits.max_turns', () => {
  it('stops each message at its own count of agentic turns, as end_turn; the next message counts anew', async () => {
    const id = await sessionIn({ max_turns: 2 });
    for (const n of [1, 2]) {
      const turn = await berth.turn(id, `loop ${n}`);
      const results = turn.flatMap((e) =>
        e.type === 'agent.tool_result' ? [JSON.stringify(e.content)] : [],
      );
      // Two model calls, each a tool use the CLI ran; the third (the answer) is never asked for.
      expect(results, JSON.stringify(turn)).toEqual([
        expect.stringContaining(`first-${n}`),
        expect.stringContaining(`second-${n}`),
      ]);
      expect(replyTexts(turn)).not.toContain(`looped ${n}`);
      expect(turn.some((e) => e.type === 'session.error')).toBe(false);
      expect(turn.at(-1)).toMatchObject({ type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
    }
  });

  it('lets a message of an environment without limits take all the turns it needs', async () => {
    const env = await berth.api('POST', '/v1/environments', { name: 'open', config: { type: 'cloud' } });
    const res = await berth.api('POST', '/v1/sessions', {
      agent: await berth.agent({ allow: ['bash'] }),
      environment_id: env.body.id,
    });
    expect(replyTexts(await berth.turn(res.body.id as string, 'loop 3'))).toContain('looped 3');
  });

  it('refuses a max_turns that is not a positive integer, by name', async () => {
    for (const max_turns of [0, 1.5, -1]) {
      const res = await berth.api('POST', '/v1/environments', {
        name: 'bad',
        config: { type: 'cloud', limits: { max_turns } },
      });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/max_turns/);
    }
  });
});
