/**
 * The session state machine against a fake runtime (no subprocess): each legal transition, a sample of
 * illegal ones, confirmations, interrupts, recycling, suspension, hydration and crashes. The same paths
 * run against the real CLI in test/sessions.test.ts, test/recycle.test.ts and test/lifetimes.test.ts.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fakeSpawner } from '../../test/helpers/fake-runtime.js';
import { exercised, firstTurn, harness, message, types, until } from '../../test/helpers/session-harness.js';
import { isBerthError } from '../errors.js';
import { SESSION_TRANSITIONS, assertTransition } from './session-state.js';

describe('the transition table', () => {
  it('lets every state reach closed, and closed nothing', () => {
    for (const [state, next] of Object.entries(SESSION_TRANSITIONS)) {
      if (state === 'closed') expect(next).toEqual([]);
      else expect(next).toContain('closed');
    }
  });

  it.each([
    ['cold', 'idle'],
    ['cold', 'running'],
    ['starting', 'idle'],
    ['idle', 'suspended'],
    ['suspended', 'running'],
    ['suspending', 'running'],
    ['requires_action', 'idle'],
    ['closed', 'cold'],
  ] as const)('throws on %s -> %s', (from, to) => {
    expect(() => assertTransition('s', from, to)).toThrow(`illegal transition ${from} -> ${to}`);
  });
});

describe('Session against a fake runtime', () => {
  it('starts a subprocess on the first turn and holds it for the next: cold -> starting -> running -> idle -> running -> idle', async () => {
    const h = await harness();
    expect(h.session.currentState).toBe('cold');
    h.session.send([message('one')]);
    expect(h.session.currentState).toBe('starting');
    expect(h.session.holdsSlot).toBe(true);
    const proc = await h.runtime.process(0);
    expect((await proc.nextInput())?.message.content).toBe('one');
    expect(proc.options.sessionId).toBe('6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10');
    expect(proc.options.settingSources).toEqual([]);
    proc.init('6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10');
    proc.say('hi');
    proc.result({ costUsd: 0.5 });
    await until(() => h.session.currentState === 'idle');

    h.session.send([message('two')]);
    expect((await proc.nextInput())?.message.content).toBe('two');
    proc.result({ costUsd: 0.25 });
    await until(() => !h.session.isBusy);
    expect(h.runtime.processes).toHaveLength(1);
    expect(h.states).toEqual(['cold', 'starting', 'running', 'idle', 'running', 'idle']);
    const idle = h.events.filter((e) => e.type === 'session.status_idle');
    expect(idle.map((e) => (e as { usage?: { cost_usd: number } }).usage?.cost_usd)).toEqual([0.5, 0.25]);
    const stored = await h.record();
    expect(stored).toMatchObject({ status: 'idle', started: true, turns: 2 });
    expect(stored?.usage.cost_usd).toBeCloseTo(0.75, 10);
  });

  it('pauses for a confirmation (running -> requires_action -> running) and runs the tool when allowed', async () => {
    const h = await harness();
    const proc = await firstTurn(h, 'write it');
    const decision = proc.ask('toolu_1');
    await until(() => h.session.currentState === 'requires_action');
    const waiting = h.events.findLast((e) => e.type === 'session.status_idle') as unknown as {
      stop_reason: { type: string; event_ids: string[] };
    };
    const toolUse = h.events.find((e) => e.type === 'agent.tool_use');
    expect(waiting.stop_reason).toEqual({ type: 'requires_action', event_ids: [toolUse?.id] });
    // Clients name a tool use by its event's id, never by the CLI's.
    expect(h.session.pendingToolUses).toEqual([toolUse!.id]);
    expect(() =>
      h.session.send([{ type: 'user.tool_confirmation', tool_use_id: 'toolu_1', result: 'allow' }]),
    ).toThrow(/not waiting/);
    h.session.send([{ type: 'user.tool_confirmation', tool_use_id: toolUse!.id, result: 'allow' }]);
    expect(await decision).toMatchObject({ behavior: 'allow' });
    expect(h.session.currentState).toBe('running');
    proc.result();
    await until(() => h.session.currentState === 'idle');
    expect(h.states).toEqual(['cold', 'starting', 'running', 'requires_action', 'running', 'idle']);
  });

  it('refuses a confirmation for a tool use that is not waiting, and stores nothing', async () => {
    const h = await harness();
    const before = h.events.length;
    expect(() =>
      h.session.send([{ type: 'user.tool_confirmation', tool_use_id: 'toolu_x', result: 'allow' }]),
    ).toThrow(expect.objectContaining({ code: 'tool_use_not_pending' }));
    expect(h.events).toHaveLength(before);
    expect(h.session.currentState).toBe('cold');
  });

  it('denies a tool use nobody confirms in time', async () => {
    const h = await harness({ timeouts: { confirmationMs: 30, interruptMs: 5_000, killGraceMs: 10 } });
    const proc = await firstTurn(h, 'write it');
    expect(await proc.ask('toolu_1')).toMatchObject({
      behavior: 'deny',
      message: expect.stringMatching(/in time/),
    });
    expect(h.session.currentState).toBe('running');
  });

  it('ends an interrupted turn with stop reason interrupted and keeps the subprocess', async () => {
    const h = await harness();
    const proc = await firstTurn(h, 'long');
    await until(() => h.session.currentState === 'running');
    h.session.send([{ type: 'user.interrupt' }]);
    await until(() => h.session.currentState === 'idle');
    expect(proc.interrupts).toBe(1);
    const last = h.events.findLast((e) => e.type === 'session.status_idle') as unknown as {
      stop_reason: unknown;
    };
    expect(last.stop_reason).toEqual({ type: 'interrupted' });
    expect(h.session.processInfo).toBeDefined();
  });

  it('kills a subprocess whose interrupt never settles, and the next turn starts a new one that resumes', async () => {
    const h = await harness({ timeouts: { confirmationMs: 5_000, interruptMs: 30, killGraceMs: 10 } });
    h.runtime.honoursInterrupt = false;
    h.session.send([message('long')]);
    const first = await h.runtime.process(0);
    first.init('6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10');
    await first.nextInput();
    await until(() => h.session.currentState === 'running');
    h.session.send([{ type: 'user.interrupt' }]);
    await until(() => h.session.currentState === 'cold');
    expect(first.closed).toBe(true);
    expect(h.kills()).toBeGreaterThan(0);

    h.runtime.honoursInterrupt = true;
    h.session.send([message('again')]);
    const second = await h.runtime.process(1);
    expect(second.options.resume).toBe('6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10');
    second.result();
    await until(() => h.session.currentState === 'idle');
    expect(h.states).toEqual(['cold', 'starting', 'running', 'cold', 'starting', 'running', 'idle']);
  });

  it('ends the turn with subprocess_exited when the subprocess crashes mid-turn (running -> cold)', async () => {
    const h = await harness();
    const proc = await firstTurn(h, 'crash');
    await until(() => h.session.currentState === 'running');
    proc.exit(new Error('boom'));
    await until(() => h.session.currentState === 'cold');
    const error = h.events.find((e) => e.type === 'session.error') as unknown as {
      error: { type: string; message: string };
    };
    expect(error.error.type).toBe('subprocess_exited');
    expect(error.error.message).toContain('boom');
    const idle = h.events.findLast((e) => e.type === 'session.status_idle') as unknown as {
      stop_reason: unknown;
    };
    expect(idle.stop_reason).toEqual({ type: 'error', subtype: 'subprocess_exited' });
    expect(h.kills()).toBeGreaterThan(0);
  });

  it('ends a turn with memory_limit when the tree went over its memory, even if a result arrived (running -> cold)', async () => {
    let oom = false;
    const limit = { type: 'memory_limit' as const, message: 'over its memory' };
    const h = await harness({
      createSpawner: () => ({ ...fakeSpawner(), endCause: () => (oom ? limit : undefined) }),
    });
    const proc = await firstTurn(h, 'hog');
    await until(() => h.session.currentState === 'running');
    // The kernel killed a tool; the agent answered before the spawner's poll saw it.
    oom = true;
    proc.result();
    await until(() => h.session.currentState === 'cold');
    expect(proc.closed).toBe(true);
    expect(h.events.find((e) => e.type === 'session.error')).toMatchObject({ error: limit });
    expect(h.events.findLast((e) => e.type === 'session.status_idle')).toMatchObject({
      stop_reason: { type: 'error', subtype: 'memory_limit' },
    });
  });

  it('recycles an idle subprocess at a turn boundary (idle -> cold) and resumes in a new one', async () => {
    let recycled: Promise<void> | undefined;
    const h = await harness({
      onTurnEnd: (s) => {
        recycled ??= s.recycle('max_turns');
      },
    });
    h.session.send([message('one')]);
    const first = await h.runtime.process(0);
    first.init('6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10');
    await first.nextInput();
    first.result({ costUsd: 0.5 });
    await until(() => recycled !== undefined);
    await recycled;
    expect(h.session.currentState).toBe('cold');
    expect(types(h.events)).toContain('session.status_rescheduled');
    expect(await first.nextInput()).toBeUndefined(); // stdin ended: a graceful end
    // A CLI that exits appends its cumulative cost to the transcript, and one that resumes restores it.
    const project = path.join(h.configDir, 'projects', 'unit-project');
    await mkdir(project, { recursive: true });
    await writeFile(
      path.join(project, '6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10.jsonl'),
      `${JSON.stringify({ type: 'user' })}\n${JSON.stringify({ type: 'cost-state', totalCostUSD: 0.5 })}\n`,
    );
    h.runtime.startingCost = 0.5;
    h.session.send([message('two')]);
    const second = await h.runtime.process(1);
    expect(second.options.resume).toBe('6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10');
    await second.nextInput();
    second.result({ costUsd: 0.125 });
    await until(() => h.session.currentState === 'idle');
    const stored = await h.record();
    expect(stored?.usage.cost_usd).toBeCloseTo(0.625, 10);
    expect(stored?.turns).toBe(2);
  });

  it('suspends a quiet session (idle -> suspending -> suspended) and hydrates it on the next turn', async () => {
    let hydrated = 0;
    const h = await harness({
      prepareStart: () => {
        hydrated += 1;
        return Promise.resolve();
      },
    });
    h.session.send([message('one')]);
    const first = await h.runtime.process(0);
    first.init('6f1c6a52-0a34-4c55-9d2f-1b7d1c0e4a10');
    await first.nextInput();
    first.result();
    await until(() => h.session.currentState === 'idle' && !h.session.isBusy);
    let worked = false;
    const suspending = h.session.suspend('idle_timeout', () => {
      expect(h.session.currentState).toBe('suspending');
      worked = true;
      return Promise.resolve();
    });
    expect(h.session.currentState).toBe('suspending');
    expect(await suspending).toBe(true);
    expect(worked).toBe(true);
    expect(h.session.currentState).toBe('suspended');
    expect((await h.record())?.status).toBe('suspended');

    h.session.send([message('two')]);
    expect(h.session.currentState).toBe('starting');
    const second = await h.runtime.process(1);
    await second.nextInput();
    second.result();
    await until(() => h.session.currentState === 'idle');
    expect(hydrated).toBe(2);
    expect(h.states).toEqual([
      'cold',
      'starting',
      'running',
      'idle',
      'suspending',
      'suspended',
      'starting',
      'running',
      'idle',
    ]);
  });

  it('goes cold with suspend_failed when the snapshot fails, and stays usable', async () => {
    const h = await harness();
    const ok = await h.session.suspend('capacity', () => Promise.reject(new Error('blob store down')));
    expect(ok).toBe(false);
    expect(h.session.currentState).toBe('cold');
    const error = h.events.find((e) => e.type === 'session.error') as unknown as { error: { type: string } };
    expect(error.error.type).toBe('suspend_failed');
  });

  it('returns a suspended session whose hydration fails to suspended (starting -> suspended)', async () => {
    const h = await harness(
      {
        prepareStart: () => Promise.reject(new Error('no snapshot')),
      },
      { status: 'suspended', started: true },
    );
    expect(h.session.currentState).toBe('suspended');
    h.session.send([message('wake up')]);
    await until(() => !h.session.isBusy);
    expect(h.session.currentState).toBe('suspended');
    const error = h.events.find((e) => e.type === 'session.error') as unknown as { error: { type: string } };
    expect(error.error.type).toBe('hydrate_failed');
    expect(h.runtime.processes).toHaveLength(0);
    expect(h.session.holdsSlot).toBe(false);
  });

  it('holds a message that arrives while suspending until the suspension is over, then hydrates', async () => {
    let release: (() => void) | undefined;
    const h = await harness({ prepareStart: () => Promise.resolve() });
    const suspending = h.session.suspend(
      'capacity',
      () => new Promise<void>((resolve) => (release = resolve)),
    );
    h.session.send([message('during')]);
    expect(h.session.currentState).toBe('suspending');
    expect(h.session.holdsSlot).toBe(true);
    await until(() => release !== undefined);
    release?.();
    expect(await suspending).toBe(true);
    const proc = await h.runtime.process(0);
    expect((await proc.nextInput())?.message.content).toBe('during');
    proc.result();
    await until(() => h.session.currentState === 'idle');
    expect(h.states).toEqual(['cold', 'suspending', 'suspended', 'starting', 'running', 'idle']);
  });

  it('does not suspend a busy session', async () => {
    const h = await harness();
    h.session.send([message('busy')]);
    expect(await h.session.suspend('capacity', () => Promise.resolve())).toBe(false);
    const proc = await h.runtime.process(0);
    await proc.nextInput();
    proc.result();
    await until(() => h.session.currentState === 'idle');
  });

  it('gives the slot back when admission fails before a spawn (starting -> cold)', async () => {
    const h = await harness({ admit: () => Promise.reject(new Error('no room after all')) });
    h.session.send([message('one')]);
    await until(() => !h.session.isBusy);
    expect(h.session.currentState).toBe('cold');
    expect(h.session.holdsSlot).toBe(false);
    expect(h.runtime.processes).toHaveLength(0);
  });

  it('closes for good: the subprocess is ended, status terminated, and nothing more is accepted', async () => {
    const h = await harness();
    const proc = await firstTurn(h, 'one');
    await h.session.close('deleted');
    expect(h.session.currentState).toBe('closed');
    expect(proc.closed).toBe(true);
    expect(types(h.events)).toContain('session.status_terminated');
    expect((await h.record())?.status).toBe('terminated');
    let refused: unknown;
    try {
      h.session.send([message('two')]);
    } catch (err) {
      refused = err;
    }
    expect(isBerthError(refused, 'session_terminated')).toBe(true);
    expect(h.session.close()).toBe(h.session.close());
  });

  it('resolves whenNotBusy once the queued turns are over', async () => {
    const h = await harness();
    h.session.send([message('one'), message('two')]);
    let settled = false;
    const waiting = h.session.whenNotBusy().then(() => (settled = true));
    const proc = await h.runtime.process(0);
    await proc.nextInput();
    proc.result();
    await proc.nextInput();
    expect(settled).toBe(false);
    proc.result();
    await waiting;
    expect(h.session.isBusy).toBe(false);
  });
  it('closes from every state a client can catch it in', async () => {
    const cold = await harness();
    await cold.session.close();

    let restored: (() => void) | undefined;
    const starting = await harness({
      prepareStart: () => new Promise<void>((resolve) => (restored = resolve)),
    });
    starting.session.send([message('never starts')]);
    expect(starting.session.currentState).toBe('starting');
    await until(() => restored !== undefined);
    await starting.session.close();
    restored?.();
    await until(() => !starting.session.isBusy);
    expect(starting.runtime.processes).toHaveLength(0); // a start that outlived close() spawned nothing

    const idle = await harness();
    const proc = await firstTurn(idle, 'one');
    proc.result();
    await until(() => idle.session.currentState === 'idle');
    await idle.session.close();

    const waiting = await harness();
    const asking = await firstTurn(waiting, 'write it');
    const decision = asking.ask('toolu_1');
    await until(() => waiting.session.currentState === 'requires_action');
    await waiting.session.close();
    expect(await decision).toMatchObject({ behavior: 'deny' });

    let snapshotted: (() => void) | undefined;
    const suspending = await harness();
    const suspension = suspending.session.suspend(
      'capacity',
      () => new Promise<void>((resolve) => (snapshotted = resolve)),
    );
    expect(suspending.session.currentState).toBe('suspending');
    await until(() => snapshotted !== undefined);
    // close() waits for the snapshot in flight, which must not be cut off half-written.
    const closing = suspending.session.close();
    snapshotted?.();
    await closing;
    expect(await suspension).toBe(true);

    const suspended = await harness({}, { status: 'suspended', started: true });
    await suspended.session.close();
    for (const h of [cold, starting, idle, waiting, suspending, suspended]) {
      expect(h.session.currentState).toBe('closed');
    }
  });

  it('ends a turn paused for a confirmation when the subprocess dies (requires_action -> cold)', async () => {
    const h = await harness();
    const proc = await firstTurn(h, 'write it');
    const decision = proc.ask('toolu_1');
    await until(() => h.session.currentState === 'requires_action');
    proc.exit(new Error('killed'));
    await until(() => h.session.currentState === 'cold');
    expect(await decision).toMatchObject({ behavior: 'deny' });
    expect(h.session.pendingToolUses).toEqual([]);
  });

  it('starts no new subprocess for a queued message until the old tree is gone', async () => {
    let releaseKill: (() => void) | undefined;
    const killed = new Promise<void>((resolve) => (releaseKill = resolve));
    const h = await harness({
      timeouts: { confirmationMs: 5_000, interruptMs: 30, killGraceMs: 10 },
      createSpawner: () => ({ ...fakeSpawner(), kill: () => killed }),
    });
    h.runtime.honoursInterrupt = false;
    await firstTurn(h, 'long');
    await until(() => h.session.currentState === 'running');
    h.session.send([{ type: 'user.interrupt' }, message('next')]);
    // The interrupt did not take: the first tree is being killed, and the next turn has begun waiting.
    try {
      await until(() => types(h.events).filter((t) => t === 'session.status_running').length === 2);
      expect(h.runtime.processes).toHaveLength(1);
      expect(h.session.holdsSlot).toBe(true);
    } finally {
      releaseKill?.();
    }
    const second = await h.runtime.process(1);
    expect((await second.nextInput())?.message.content).toBe('next');
    second.result();
    await until(() => h.session.currentState === 'idle');
  });

  it('keeps its slot counted while a queued message waits for a subprocess that died', async () => {
    let releaseKill: (() => void) | undefined;
    const killed = new Promise<void>((resolve) => (releaseKill = resolve));
    const h = await harness({ createSpawner: () => ({ ...fakeSpawner(), kill: () => killed }) });
    const first = await firstTurn(h, 'one');
    await until(() => h.session.currentState === 'running');
    h.session.send([message('two')]);
    first.exit(new Error('oom'));
    try {
      await until(() => types(h.events).filter((t) => t === 'session.status_running').length === 2);
      // Between the crash and the next spawn (the dead tree is still being killed), the host must not
      // hand this slot to another session.
      expect(h.session.currentState).toBe('cold');
      expect(h.session.holdsSlot).toBe(true);
    } finally {
      releaseKill?.();
    }
    const second = await h.runtime.process(1);
    await second.nextInput();
    second.result();
    await until(() => h.session.currentState === 'idle');
  });

  it('has exercised every legal transition', () => {
    const legal = Object.entries(SESSION_TRANSITIONS).flatMap(([from, tos]) =>
      tos.map((to) => `${from}->${to}`),
    );
    expect(legal.filter((t) => !exercised.has(t))).toEqual([]);
  });
});
