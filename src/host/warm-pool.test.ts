/**
 * The warm pool's bookkeeping against a fake runtime (no subprocess): spares counted once whether parked,
 * reserved or starting, a reservation handing out its own spare, given back, or outliving a spare that died.
 */
import type { Options, Query, SpareProcess } from '@anthropic-ai/claude-agent-sdk';
import { afterEach, describe, expect, it } from 'vitest';
import type { SpawnedTree } from '../sandbox/plain-spawn.js';
import type { AgentRuntime } from '../session/agent-runtime.js';
import { WarmPool, spareCanRun } from './warm-pool.js';

interface FakeSpare extends SpareProcess {
  tenant: string;
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

describe('which sessions a spare can run', () => {
  it('is a first turn whose agent config a claim can carry', () => {
    expect(spareCanRun({ started: false, agent: {} })).toBe(true);
    expect(spareCanRun({ started: false, agent: { model: 'm', permission_mode: 'default' } })).toBe(true);
    expect(spareCanRun({ started: false, agent: { system_prompt: 'x' } })).toBe(false);
    expect(spareCanRun({ started: true, agent: {} })).toBe(false);
  });
});
