/**
 * The warm pool's bookkeeping against a fake runtime (no subprocess): spares counted once whether parked,
 * reserved or starting, a reservation handing out its own spare, given back, or outliving a spare that died;
 * and the callbacks fixed at prewarm, forwarding to the claimer.
 */
import type { HookCallbackMatcher, Options, Query, SpareProcess } from '@anthropic-ai/claude-agent-sdk';
import { afterEach, describe, expect, it } from 'vitest';
import { decisionOf } from '../../test/helpers/hooks.js';
import type { SpawnedTree } from '../sandbox/plain-spawn.js';
import type { AgentRuntime } from '../session/agent-runtime.js';
import { TOOLSET_CLI_TOOLS, toolPolicyOf } from '../session/tool-policy.js';
import { TASK_SPARES } from './layout.js';
import { WarmPool, spareCanRun } from './warm-pool.js';

interface FakeSpare extends SpareProcess {
  tenant: string;
  options: Options;
  die(): void;
  closed: boolean;
}

/** A runtime whose spares are objects: each records the tenant it was prewarmed for (from its env). */
function fakeRuntime(): AgentRuntime & { spares: FakeSpare[] } {
  const spares: FakeSpare[] = [];
  return {
    spares,
    query: () => {
      throw new Error('not used');
    },
    prewarm: ({ options }: { options: Options }) => {
      let die!: () => void;
      const exited = new Promise<void>((resolve) => (die = resolve));
      const spare: FakeSpare = {
        tenant: options.env?.TENANT ?? '?',
        options,
        closed: false,
        die,
        exited,
        claimed: new Promise(() => undefined),
        claim: () => ({}) as Query,
        close: () => {
          spare.closed = true;
          die();
        },
        [Symbol.asyncDispose]: () => Promise.resolve(),
      };
      spares.push(spare);
      return Promise.resolve(spare);
    },
  };
}

function noSpawner(): SpawnedTree {
  return {
    tree: undefined,
    stderrTail: () => '',
    kill: () => Promise.resolve(),
    spawn: () => {
      throw new Error('not used');
    },
  };
}

const pools: WarmPool[] = [];
afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close()));
});

async function parkedPool(
  size: number,
  tenants: string[],
): Promise<{ pool: WarmPool; runtime: ReturnType<typeof fakeRuntime>; room: { free: boolean } }> {
  const runtime = fakeRuntime();
  const room = { free: true };
  const pool = new WarmPool({
    size,
    initialTenants: tenants,
    spareSetup: (tenant) => Promise.resolve({ env: { TENANT: tenant } }),
    createSpawner: noSpawner,
    hasRoom: () => room.free,
    killGraceMs: 10,
    runtime,
  });
  pools.push(pool);
  pool.fill();
  for (let i = 0; i < 100 && pool.stats.parked < size; i++) await new Promise((r) => setImmediate(r));
  expect(pool.stats.parked).toBe(size);
  return { pool, runtime, room };
}

describe('the warm pool', () => {
  it('prewarms with the runtime it was given', async () => {
    const { runtime } = await parkedPool(2, ['a', 'b']);
    expect(runtime.spares.map((s) => s.tenant).sort()).toEqual(['a', 'b']);
  });

  it('reserves a spare for one session only, and hands that very spare out', async () => {
    const { pool, runtime } = await parkedPool(1, ['a']);
    const reservation = pool.reserve('a');
    expect(reservation).toBeDefined();
    // The one spare is held: a second admission finds none, and the spare still counts as a tree.
    expect(pool.reserve('a')).toBeUndefined();
    expect(pool.take('a')).toBeUndefined();
    expect(pool.trees).toBe(1);
    expect(pool.stats.parked).toBe(0);
    const claimed = reservation!.take();
    expect(claimed?.spare).toBe(runtime.spares[0]);
    // Handed out: the session's tree now, not the pool's; the reservation is spent.
    expect(pool.trees).toBe(0);
    expect(reservation!.take()).toBeUndefined();
  });

  it('gets a released spare back, parked for the next one', async () => {
    const { pool } = await parkedPool(1, ['a']);
    const reservation = pool.reserve('a')!;
    reservation.release();
    expect(pool.stats.parked).toBe(1);
    expect(pool.trees).toBe(1);
    expect(pool.reserve('a')).toBeDefined();
  });

  it('counts a reservation whose spare died until it is taken, which then yields nothing', async () => {
    const { pool, runtime, room } = await parkedPool(1, ['a']);
    const reservation = pool.reserve('a')!;
    // A full host: no replacement starts, so what is counted is the reservation alone.
    room.free = false;
    runtime.spares[0]!.die();
    await new Promise((r) => setImmediate(r));
    expect(pool.stats.lost).toBe(1);
    // Still one tree: the session it was reserved for will spawn its own in its place.
    expect(pool.trees).toBe(1);
    expect(reservation.take()).toBeUndefined();
    expect(pool.trees).toBe(0);
  });

  it('discards reserved spares when it closes', async () => {
    const { pool, runtime } = await parkedPool(1, ['a']);
    const reservation = pool.reserve('a')!;
    await pool.close();
    expect(runtime.spares[0]!.closed).toBe(true);
    expect(reservation.take()).toBeUndefined();
  });
});

/** The permission decision a spare's `PreToolUse` hook answers for a use of `toolName`. */
async function hookDecision(options: Options, toolName: string): Promise<string | undefined> {
  const [matcher]: (HookCallbackMatcher | undefined)[] = options.hooks?.PreToolUse ?? [];
  return decisionOf(matcher, toolName);
}

describe("a spare's callbacks, fixed at prewarm", () => {
  const context = { signal: new AbortController().signal, toolUseID: 'toolu_1', requestId: 'req_1' };

  it('forward to the session that claims it: canUseTool and the tool-policy hook', async () => {
    const { pool, runtime } = await parkedPool(1, ['a']);
    const { options } = runtime.spares[0]!;
    expect(options.tools).toEqual(TOOLSET_CLI_TOOLS);
    // Before a claim, nothing runs.
    expect(await hookDecision(options, 'Read')).toBe('deny');
    expect(await options.canUseTool?.('Read', {}, context)).toMatchObject({ behavior: 'deny' });

    const claimed = pool.take('a')!;
    claimed.bind({
      canUseTool: (_tool, input) => Promise.resolve({ behavior: 'allow', updatedInput: input }),
      toolPolicy: toolPolicyOf({ tools: ['Bash', 'Read'], allowed_tools: ['Read'], ask_tools: ['Bash'] }),
    });
    expect(await hookDecision(options, 'Bash')).toBe('ask');
    expect(await hookDecision(options, 'Read')).toBe('allow');
    expect(await hookDecision(options, 'Write')).toBe('deny');
    expect(await options.canUseTool?.('Bash', { command: 'ls' }, context)).toMatchObject({
      behavior: 'allow',
    });
  });

  it("leave a task's spare with the CLI's default tools and no hook", async () => {
    const { runtime } = await parkedPool(1, [TASK_SPARES]);
    expect(runtime.spares[0]!.options).not.toHaveProperty('tools');
    expect(runtime.spares[0]!.options).not.toHaveProperty('hooks');
  });
});

describe('which sessions a spare can run', () => {
  const toolset = { tools: [...TOOLSET_CLI_TOOLS], allowed_tools: ['Read'], ask_tools: ['Bash'] };

  it('is a first turn whose agent config a spare carries: model, permission mode and a toolset policy', () => {
    expect(spareCanRun({ started: false, agent: toolset })).toBe(true);
    expect(
      spareCanRun({ started: false, agent: { ...toolset, model: 'm', permission_mode: 'default' } }),
    ).toBe(true);
    expect(spareCanRun({ started: false, agent: { ...toolset, tools: ['Read'] } })).toBe(true);
    expect(spareCanRun({ started: true, agent: toolset })).toBe(false);
  });

  it('is not one whose agent has settings fixed at prewarm, or tools a spare does not have', () => {
    expect(spareCanRun({ started: false, agent: { ...toolset, system_prompt: 'x' } })).toBe(false);
    // No tools: the CLI's default set, which is more than a spare's.
    expect(spareCanRun({ started: false, agent: {} })).toBe(false);
    expect(spareCanRun({ started: false, agent: { tools: ['Read', 'Task'] } })).toBe(false);
  });
});
