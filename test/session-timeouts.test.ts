/**
 * The bounds that keep a session from hanging: an unanswered confirmation is a deny, and an interrupt
 * that the subprocess cannot act on (here: the process is frozen with SIGSTOP) kills it, after which the
 * next message resumes the conversation in a new subprocess from the store.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProcesses, listTree, treeMarkerOf } from '../src/sandbox/process-tree.js';
import type { Scenario } from '../src/testing/index.js';
import { TestBerth, replyTexts } from './helpers/berth.js';

const scenarios: Scenario[] = [
  {
    match: { userText: 'touch the flag' },
    steps: [{ toolUse: { name: 'Bash', input: { command: 'touch flag.txt' } } }, { text: 'Flag handled.' }],
  },
  { match: { userText: 'stall forever' }, steps: [{ text: 'never finished', fault: { stallMs: Infinity } }] },
];

let berth: TestBerth;

beforeAll(async () => {
  berth = await TestBerth.start({
    scenarios,
    args: ['--confirmation-timeout', '1s', '--interrupt-timeout', '2s'],
  });
});

afterAll(async () => {
  await berth?.dispose();
});

describe('session bounds', () => {
  it('denies a tool use that nobody confirms in time', async () => {
    const id = await berth.createSession();
    const events = await berth.turn(id, 'touch the flag');
    const paused = events.find(
      (e) => e.type === 'session.status_idle' && e.stop_reason.type === 'requires_action',
    );
    expect(paused).toBeDefined();
    const toolUse = events.find((e) => e.type === 'agent.tool_use');
    expect(toolUse).toMatchObject({ name: 'bash', evaluated_permission: 'ask' });
    const result = events.find((e) => e.type === 'agent.tool_result');
    expect(result).toMatchObject({ is_error: true, tool_use_id: toolUse?.id });
    expect(JSON.stringify(result)).toMatch(/No confirmation arrived in time/);
    expect(events.at(-1)).toMatchObject({ type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
    // The late answer (naming the tool use's event, as a confirmation does) finds nothing pending.
    const late = await berth.api('POST', `/v1/sessions/${id}/events`, {
      events: [{ type: 'user.tool_confirmation', tool_use_id: toolUse!.id, result: 'allow' }],
    });
    expect(late.status).toBe(409);
    expect(late.body.error.details.error_code).toBe('tool_use_not_pending');
  });

  it('kills a frozen subprocess whose interrupt never settles, then resumes from the store', async () => {
    const id = await berth.createSession();
    await berth.turn(id, 'the password is swordfish');
    const session = await berth.server.host.get('default', id);
    const [leader] = await findProcesses((p) => p.pid === session.pid);
    const tree = { leaderPid: session.pid!, marker: treeMarkerOf(leader?.env ?? []) ?? '' };
    expect(tree.marker).not.toBe('');

    const stream = berth.stream(id);
    try {
      await berth.send(id, [{ type: 'user.message', content: 'stall forever' }]);
      await berth.model.waitForRequest((r) => r.isMain && r.userText === 'stall forever');
      // The whole tree: in a sandbox the leader is bwrap, and the CLI one of the processes below it.
      for (const member of await listTree(tree)) process.kill(member.pid, 'SIGSTOP');
      await berth.send(id, [{ type: 'user.interrupt' }]);
      const idle = await stream.waitFor((e) => e.type === 'session.status_idle', 30_000);
      // Managed Agents has no `interrupted` stop reason: the turn ended after the interrupt.
      expect(idle).toMatchObject({ stop_reason: { type: 'end_turn' } });
      const interrupt = stream.events.find((e) => e.type === 'user.interrupt');
      expect(interrupt?.seq).toBeLessThan(idle.seq);
    } finally {
      stream.close();
    }
    expect(session.pid).toBeUndefined();
    expect(await listTree(tree)).toEqual([]);

    const next = await berth.turn(id, 'what is the password?');
    expect(replyTexts(next).join(), JSON.stringify(next, null, 1)).toContain('what is the password?');
    expect(session.pid).not.toBe(tree.leaderPid);
    const request = berth.model.requests.findLast((r) => r.isMain && r.userText === 'what is the password?');
    expect(JSON.stringify(request?.messages)).toContain('swordfish');
  });
});
