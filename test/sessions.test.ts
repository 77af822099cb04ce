/**
 * Sessions end to end: the HTTP API, the real `claude` subprocess, the scripted model, the embedded store.
 */
import { randomInt } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProcesses, treeMarkerOf } from '../src/sandbox/process-tree.js';
import type { Scenario } from '../src/testing/index.js';
import { TestBerth, replyTexts } from './helpers/berth.js';
import { hostProcesses } from './helpers/processes.js';

// The jobs' names carry a number of this run's own: they are found by command line (one scrubs its
// environment by escaping), and another run on the machine must not be counted.
const JOB = 100_000 + randomInt(800_000);

const scenarios: Scenario[] = [
  {
    name: 'write-file',
    match: { userText: 'write the note' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'echo berth-was-here > note.txt && echo wrote' } } },
      { text: 'The note is written.' },
    ],
  },
  {
    name: 'needs-permission',
    match: { userText: 'touch the flag' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'touch flag.txt && echo touched' } } },
      { text: 'Done with the flag.' },
    ],
  },
  {
    name: 'stall',
    match: { userText: 'stall forever' },
    steps: [{ text: 'never finished', fault: { stallMs: Infinity } }],
  },
  {
    name: 'background-job',
    match: { userText: 'start a daemon' },
    steps: [
      {
        toolUse: {
          name: 'Bash',
          // One job in the shell's group, one orphaned by a subshell, one escaping into a new session. The
          // CLI refuses commands that start with `sleep`, so the jobs run a copy of it under another name.
          input: {
            command:
              `cp "$(command -v sleep)" ./berthd && { setsid ./berthd ${JOB + 2} >/dev/null 2>&1 & } ; ` +
              // Wait until the escapee has called setsid and exec'd, or the CLI's own cleanup may win the race.
              // Bounded: a job that never shows up fails the turn instead of hanging it.
              `for i in $(seq 2000); do grep -qsa "^\\./berthd.${JOB + 2}" /proc/[0-9]*/cmdline && break; sleep 0.01; done; ` +
              `./berthd ${JOB} >/dev/null 2>&1 & (./berthd ${JOB + 1} >/dev/null 2>&1 &); echo started`,
          },
        },
      },
      { text: 'The daemon is running.' },
    ],
  },
];

let berth: TestBerth;

beforeAll(async () => {
  berth = await TestBerth.start({ scenarios });
});

afterAll(async () => {
  await berth?.dispose();
});

/**
 * The leader of the session's subprocess tree as the kernel knows it: its pid, its start time (which tells
 * a reused pid apart) and its tree marker. A respawned subprocess differs in all three.
 */
async function subprocessLeader(id: string): Promise<{ pid: number; startTime: string; marker: string }> {
  const pid = (await berth.server.host.get('default', id)).pid;
  if (pid === undefined) throw new Error(`session ${id} has no subprocess`);
  // One of this host's subprocess trees, found in /proc by its config dir and marker.
  expect(await hostProcesses(berth.dataDir)).toContain(pid);
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // fields[0] is field 3 of proc(5) (state); field 6 is the session id, field 22 the start time.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  expect(fields[0], stat).not.toBe('Z');
  expect(Number(fields[3]), 'the leader of its own session').toBe(pid);
  const marker = treeMarkerOf(readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0'));
  if (marker === undefined) throw new Error(`process ${pid} carries no tree marker`);
  return { pid, startTime: fields[19]!, marker };
}

/** Live processes whose command line is exactly `command`. */
async function processesMatching(command: string): Promise<number[]> {
  return (await findProcesses((p) => p.cmdline === command)).map((p) => p.pid);
}

describe('sessions on the real SDK', () => {
  it('holds a two-turn conversation, and the second request carries the first turn', async () => {
    const id = await berth.createSession({ title: 'two turns' });
    const first = await berth.turn(id, 'my favourite colour is ultramarine');
    const leader = await subprocessLeader(id);
    expect(first.map((e) => e.type)).toEqual(
      expect.arrayContaining(['session.status_running', 'agent.message', 'session.status_idle']),
    );
    expect(replyTexts(first).join()).toContain('ultramarine');
    const idle = first.at(-1)!;
    expect(idle).toMatchObject({ type: 'session.status_idle', stop_reason: { type: 'end_turn' } });

    const second = await berth.turn(id, 'what did I say?');
    expect(replyTexts(second).join()).toContain('what did I say?');
    const request = berth.model.requests.findLast((r) => r.isMain && r.userText?.includes('what did I say?'));
    expect(JSON.stringify(request?.messages)).toContain('ultramarine');

    // One subprocess held open across both turns: the same process leads the tree. (The CLI's session id
    // alone would not tell: a respawned process resumes the same session and sends the same id.)
    expect(await subprocessLeader(id)).toEqual(leader);
    const mains = berth.model.requests.filter(
      (r) => r.isMain && JSON.stringify(r.messages).includes('ultramarine'),
    );
    expect(new Set(mains.map((r) => r.sessionId)).size).toBe(1);

    const session = (await berth.api('GET', `/v1/sessions/${id}`)).body;
    expect(session).toMatchObject({
      id,
      status: 'idle',
      title: 'two turns',
      berth: { status: 'idle', turns: 2 },
    });
    // The scripted model uses no tokens, so its turns cost nothing (test/metrics.test.ts and
    // test/managed-agents.test.ts have it estimate tokens, priced at list price).
    expect(session.usage).toEqual({
      input_tokens: 0,
      output_tokens: 0,
      cache_read_input_tokens: 0,
      cache_creation: { ephemeral_5m_input_tokens: 0 },
      list_cost: { amount: '0', currency: 'USD' },
    });
    expect(session.berth.cost_usd).toBe(0);
  });

  it('takes a message as content blocks', async () => {
    const id = await berth.createSession();
    const [sent] = await berth.send(id, [
      { type: 'user.message', content: [{ type: 'text', text: 'blocks arrive intact' }] },
    ]);
    const stream = berth.stream(id, { after: sent!.seq });
    try {
      const idle = await stream.waitFor((e) => e.type === 'session.status_idle');
      expect(idle).toMatchObject({ stop_reason: { type: 'end_turn' } });
      expect(replyTexts(stream.events).join()).toContain('blocks arrive intact');
    } finally {
      stream.close();
    }
  });

  it('streams a Bash tool call that writes a file into the session cwd', async () => {
    const id = await berth.createSession({ allow: ['bash'] });
    const stream = berth.stream(id);
    expect(await stream.status).toBe(200);
    try {
      await berth.send(id, [{ type: 'user.message', content: 'please write the note' }]);
      const toolUse = await stream.waitFor((e) => e.type === 'agent.tool_use');
      const toolResult = await stream.waitFor((e) => e.type === 'agent.tool_result');
      await stream.waitFor((e) => e.type === 'session.status_idle');
      expect(toolUse).toMatchObject({ name: 'bash', evaluated_permission: 'allow' });
      expect(toolResult).toMatchObject({ is_error: false });
      expect(toolResult.seq).toBeGreaterThan(toolUse.seq);
      // A result points at its tool use by the event's id.
      expect(toolResult).toMatchObject({ type: 'agent.tool_result', tool_use_id: toolUse.id });
      const cwd = berth.server.host.pathsFor({ id, tenant: 'default' }).cwd;
      expect(readFileSync(path.join(cwd, 'note.txt'), 'utf8').trim()).toBe('berth-was-here');
      // SSE ids are the sequence numbers, in order, without gaps.
      const seqs = stream.frames.map((f) => Number(f.id));
      expect(seqs).toEqual(seqs.map((_, i) => seqs[0]! + i));
    } finally {
      stream.close();
    }
  });

  it('asks for a confirmation; allow runs the tool, deny does not', async () => {
    const id = await berth.createSession();
    const cwd = berth.server.host.pathsFor({ id, tenant: 'default' }).cwd;
    const stream = berth.stream(id, { after: 0 });
    try {
      await berth.send(id, [{ type: 'user.message', content: 'touch the flag please' }]);
      const paused = await stream.waitFor(
        (e) => e.type === 'session.status_idle' && e.stop_reason.type === 'requires_action',
      );
      const toolUse = await stream.waitFor((e) => e.type === 'agent.tool_use');
      if (paused.type !== 'session.status_idle' || paused.stop_reason.type !== 'requires_action')
        throw new Error();
      if (toolUse.type !== 'agent.tool_use') throw new Error();
      expect(toolUse).toMatchObject({ name: 'bash', evaluated_permission: 'ask' });
      expect(paused.stop_reason.event_ids).toEqual([toolUse.id]);
      // Managed Agents' status of a session waiting on a confirmation is idle; Berth's says why.
      expect((await berth.api('GET', `/v1/sessions/${id}`)).body).toMatchObject({
        status: 'idle',
        berth: { status: 'requires_action' },
      });
      expect(existsSync(path.join(cwd, 'flag.txt'))).toBe(false);
      await berth.send(id, [{ type: 'user.tool_confirmation', tool_use_id: toolUse.id, result: 'allow' }]);
      await stream.waitFor((e) => e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn');
      expect(existsSync(path.join(cwd, 'flag.txt'))).toBe(true);
    } finally {
      stream.close();
    }

    const id2 = await berth.createSession();
    const cwd2 = berth.server.host.pathsFor({ id: id2, tenant: 'default' }).cwd;
    const stream2 = berth.stream(id2, { after: 0 });
    try {
      await berth.send(id2, [{ type: 'user.message', content: 'touch the flag please' }]);
      const toolUse = await stream2.waitFor((e) => e.type === 'agent.tool_use');
      await stream2.waitFor(
        (e) => e.type === 'session.status_idle' && e.stop_reason.type === 'requires_action',
      );
      if (toolUse.type !== 'agent.tool_use') throw new Error();
      await berth.send(id2, [
        {
          type: 'user.tool_confirmation',
          tool_use_id: toolUse.id,
          result: 'deny',
          deny_message: 'not today',
        },
      ]);
      const result = await stream2.waitFor((e) => e.type === 'agent.tool_result');
      expect(result).toMatchObject({ is_error: true, tool_use_id: toolUse.id });
      expect(JSON.stringify(result)).toContain('not today');
      await stream2.waitFor((e) => e.type === 'session.status_idle' && e.stop_reason.type === 'end_turn');
      expect(existsSync(path.join(cwd2, 'flag.txt'))).toBe(false);
    } finally {
      stream2.close();
    }
  });

  it('interrupts a stalled turn, and the session stays usable', async () => {
    const id = await berth.createSession();
    const stream = berth.stream(id, { after: 0 });
    try {
      await berth.send(id, [{ type: 'user.message', content: 'stall forever' }]);
      await berth.model.waitForRequest((r) => r.isMain && r.userText?.includes('stall forever') === true);
      await berth.send(id, [{ type: 'user.interrupt' }]);
      const idle = await stream.waitFor((e) => e.type === 'session.status_idle', 30_000);
      // Managed Agents has no `interrupted` stop reason: the interrupted turn ended, after the interrupt,
      // without an error.
      expect(idle).toMatchObject({ stop_reason: { type: 'end_turn' } });
      const interrupt = stream.events.find((e) => e.type === 'user.interrupt');
      expect(interrupt?.seq).toBeLessThan(idle.seq);
      expect(stream.events.filter((e) => e.type === 'session.error')).toEqual([]);
      expect(replyTexts(stream.events).join()).not.toContain('never finished');
      const next = await berth.turn(id, 'are you still there?');
      expect(replyTexts(next).join()).toContain('are you still there?');
    } finally {
      stream.close();
    }
  });

  it('replays exactly the missed events to a client that reconnects with Last-Event-ID', async () => {
    const id = await berth.createSession();
    await berth.turn(id, 'first words');
    const all1 = await berth.history(id);
    const seen = all1.at(-1)!.seq;
    await berth.turn(id, 'second words');
    const all2 = await berth.history(id);
    const missed = all2.filter((e) => e.seq > seen);
    expect(missed.length).toBeGreaterThan(0);

    const stream = berth.stream(id, { lastEventId: seen });
    try {
      await stream.waitFor((e) => e.seq === all2.at(-1)!.seq);
      expect(stream.events).toEqual(missed);
      // Live events follow the replay without a gap or a duplicate.
      await berth.send(id, [{ type: 'user.message', content: 'third words' }]);
      await stream.waitFor((e) => e.type === 'session.status_idle' && e.seq > all2.at(-1)!.seq);
      const seqs = stream.events.map((e) => e.seq);
      expect(seqs).toEqual(seqs.map((_, i) => seen + 1 + i));
    } finally {
      stream.close();
    }
  });

  it('kills the background processes an agent started when the session is deleted', async () => {
    const id = await berth.createSession({ allow: ['bash'] });
    await berth.turn(id, 'start a daemon');
    const jobs = async () =>
      [
        ...(await processesMatching(`./berthd ${JOB}`)),
        ...(await processesMatching(`./berthd ${JOB + 1}`)),
        ...(await processesMatching(`./berthd ${JOB + 2}`)),
      ].length;
    // The CLI itself ends the jobs left in the tool shell's process group; the one that escaped into a
    // session of its own survives it, and only Berth's tree kill can find it.
    expect(await processesMatching(`./berthd ${JOB + 2}`)).toHaveLength(1);
    const res = await berth.api('DELETE', `/v1/sessions/${id}`);
    expect(res.status).toBe(200);
    expect(await jobs()).toBe(0);
    expect((await berth.api('GET', `/v1/sessions/${id}`)).status).toBe(404);
  });
});
