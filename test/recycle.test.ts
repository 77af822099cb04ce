/**
 * Recycling with the real subprocess: a soft limit crossed replaces the subprocess at the next turn
 * boundary (the conversation goes on in a fresh one, resumed from the store), and the hard RSS limit
 * kills the tree mid-turn without wedging the session.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { listTree, type ProcessTreeId } from '../src/sandbox/process-tree.js';
import type { Scenario } from '../src/testing/index.js';
import { TestBerth, replyTexts } from './helpers/berth.js';

/** Polls until the tree has no live process; the bound only keeps a failure from hanging. */
async function expectTreeGone(tree: ProcessTreeId, boundMs = 15_000): Promise<void> {
  const deadline = Date.now() + boundMs;
  let left = await listTree(tree);
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    left = await listTree(tree);
  }
  expect(left).toEqual([]);
}

async function liveTree(berth: TestBerth, id: string): Promise<ProcessTreeId> {
  const session = await berth.server.host.get('default', id);
  const tree = session.processInfo?.tree;
  if (!tree) throw new Error(`session ${id} has no live subprocess`);
  return { ...tree };
}

const servers: TestBerth[] = [];

async function start(args: string[], scenarios: Scenario[] = []): Promise<TestBerth> {
  const berth = await TestBerth.start({ args, scenarios });
  servers.push(berth);
  return berth;
}

afterAll(async () => {
  await Promise.allSettled(servers.map((s) => s.dispose()));
});

describe('recycling at a turn boundary', () => {
  it('recycles after N turns, ends the old tree and keeps the history', async () => {
    const berth = await start(['--recycle-after-turns', '2']);
    const id = await berth.createSession();
    const stream = berth.stream(id);
    try {
      await berth.turn(id, 'the password is swordfish');
      const first = await liveTree(berth, id);
      const second = await berth.turn(id, 'remember it');
      expect(second.some((e) => e.type === 'session.status_rescheduled')).toBe(false);
      const rescheduled = await stream.waitFor((e) => e.type === 'session.status_rescheduled', 30_000);
      expect(rescheduled).toMatchObject({ reason: '2 turns since spawn, the limit is 2' });
      await expectTreeGone(first);

      const third = await berth.turn(id, 'what is the password?');
      expect(replyTexts(third).join()).toContain('what is the password?');
      const next = await liveTree(berth, id);
      expect(next.leaderPid).not.toBe(first.leaderPid);
      const request = berth.model.requests.findLast(
        (r) => r.isMain && r.userText === 'what is the password?',
      );
      expect(JSON.stringify(request?.messages)).toContain('swordfish');
    } finally {
      stream.close();
    }
    // No recycle after the third turn: the new subprocess has run one turn.
    const events = await berth.history(id);
    expect(events.filter((e) => e.type === 'session.status_rescheduled')).toHaveLength(1);
  });

  it('recycles a tree over the soft RSS limit at the next turn boundary', async () => {
    const berth = await start(['--recycle-rss', '1MiB', '--rss-sample-interval', '100ms']);
    const id = await berth.createSession();
    const stream = berth.stream(id);
    try {
      // The recycle follows the turn's end at once, so the tree is taken while the model is answering.
      await berth.send(id, [{ type: 'user.message', content: 'the colour is teal' }]);
      await berth.model.waitForRequest((r) => r.isMain && r.userText === 'the colour is teal');
      const first = await liveTree(berth, id);
      const rescheduled = await stream.waitFor((e) => e.type === 'session.status_rescheduled', 30_000);
      expect(rescheduled).toMatchObject({
        reason: expect.stringMatching(/^rss \d+ MiB over the soft limit 1 MiB$/),
      });
      await expectTreeGone(first);
      const next = await berth.turn(id, 'what is the colour?');
      expect(replyTexts(next).join()).toContain('what is the colour?');
      const request = berth.model.requests.findLast((r) => r.isMain && r.userText === 'what is the colour?');
      expect(JSON.stringify(request?.messages)).toContain('teal');
    } finally {
      stream.close();
    }
  });
});

describe('the hard RSS limit', () => {
  // The CLI's own tree is ~200-300 MB during a turn (measured); the tool takes ~900 MB more and holds it,
  // so only the tool call crosses the limit and the resumed turn afterwards does not.
  const scenarios: Scenario[] = [
    {
      match: { userText: 'grow' },
      steps: [
        {
          toolUse: {
            name: 'Bash',
            input: {
              command:
                'node -e "globalThis.hold = Buffer.alloc(900 * 2 ** 20, 1); setTimeout(() => {}, 30000)"',
            },
          },
        },
        { text: 'Grew and finished.' },
      ],
    },
  ];

  it('kills the tree mid-turn with session.error, and the next message resumes', async () => {
    const berth = await start(['--hard-rss', '600MiB', '--rss-sample-interval', '200ms'], scenarios);
    const id = await berth.createSession({ allow: ['bash'] });
    await berth.turn(id, 'the city is Lisbon');
    const first = await liveTree(berth, id);

    const events = await berth.turn(id, 'grow', 45_000);
    const error = events.find((e) => e.type === 'session.error');
    expect(error, JSON.stringify(events, null, 1)).toMatchObject({
      error: {
        code: 'hard_rss_exceeded',
        message: expect.stringMatching(/rss \d+(\.\d+)? [MG]iB over the hard limit 600 MiB/),
      },
    });
    expect(events.at(-1)).toMatchObject({
      type: 'session.status_idle',
      stop_reason: { type: 'retries_exhausted' },
    });
    expect(replyTexts(events)).not.toContain('Grew and finished.');
    await expectTreeGone(first);

    const next = await berth.turn(id, 'which city?');
    expect(replyTexts(next).join(), JSON.stringify(next, null, 1)).toContain('which city?');
    expect((await liveTree(berth, id)).leaderPid).not.toBe(first.leaderPid);
    const request = berth.model.requests.findLast((r) => r.isMain && r.userText === 'which city?');
    expect(JSON.stringify(request?.messages)).toContain('Lisbon');
  });
});
