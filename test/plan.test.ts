/**
 * `berth plan` as a user runs it: a short measurement with the real `claude` subprocess whose JSON must
 * hold a plausible peak and the formula's answers, nothing left behind (processes, temp dir), and bad
 * flags rejected with exit code 2. Plus the sizing arithmetic on its own.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CEILING_STEP,
  planSizing,
  suggestSessionCeiling,
  type PlanResult,
  type SizingPlan,
} from '../src/host/plan.js';
import { GIB } from '../src/host/sizing.js';
import { markedProcessesUnder } from './helpers/processes.js';

const BIN = path.resolve('bin/berth.js');
const MIB = 1024 ** 2;

let dir: string;

beforeAll(async () => {
  // The CLI's throwaway data dir goes under this (TMPDIR), so its config dirs carry `/berth-test-` and the
  // global teardown would also catch a leftover.
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-plan-'));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Runs the CLI with a clean environment; resolves when it has exited. */
function berth(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: dir,
    env: { PATH: process.env.PATH, HOME: dir, TMPDIR: dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

describe('berth plan', () => {
  it('measures a scripted session and answers the formula, leaving nothing behind', async () => {
    const r = await berth(['plan', '--turns', '2', '--tool-calls', '1', '--host-ram', '24GiB', '--json']);
    expect(r.code, r.stderr).toBe(0);
    const { measurement, sizing } = JSON.parse(r.stdout) as { measurement: PlanResult; sizing: SizingPlan };

    expect(measurement.sessions).toHaveLength(1);
    const [session] = measurement.sessions;
    expect(session!.toolCallsOk).toBe(2);
    expect(session!.samples).toBeGreaterThan(0);
    expect(measurement.peakMaxBytes).toBeGreaterThan(50e6);
    expect(measurement.peakMaxBytes).toBeLessThan(4 * GIB);
    expect(measurement.afterFirstTurnMaxBytes).toBeGreaterThan(50e6);
    expect(measurement.afterFirstTurnMaxBytes).toBeLessThanOrEqual(measurement.peakMaxBytes);

    expect(sizing.hostRamBytes).toBe(24 * GIB);
    expect(sizing.overheadBytes).toBe(GIB);
    expect(sizing.peakBytes).toBe(measurement.peakMaxBytes);
    expect(sizing.suggestedCeilingBytes % CEILING_STEP).toBe(0);
    expect(sizing.suggestedCeilingBytes).toBeGreaterThanOrEqual(measurement.peakMaxBytes * 1.25);
    expect(sizing.suggestedCeilingBytes).toBeLessThan(measurement.peakMaxBytes * 1.25 + CEILING_STEP);
    const room = sizing.hostRamBytes - sizing.overheadBytes;
    expect(sizing.withDefaultCeiling).toEqual({ sessionCeilingBytes: GIB, agentsPerHost: 23 });
    expect(sizing.withSuggestedCeiling.agentsPerHost).toBe(Math.floor(room / sizing.suggestedCeilingBytes));

    const left = await markedProcessesUnder(dir);
    expect(left.map((p) => `${p.pid} ${p.cmdline}`)).toEqual([]);
    expect(await readdir(dir)).toEqual([]);
  });

  it('prints the formula in its text report', async () => {
    const r = await berth(['plan', '--turns', '1', '--tool-calls', '0', '--host-ram', '8GiB']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('agents per host = (8.0 GiB - 1.0 GiB) / 1.0 GiB = 7');
    expect(r.stdout).toMatch(/agents per host = \(8\.0 GiB - 1\.0 GiB\) \/ \d+ MiB = \d+/);
    expect(await readdir(dir)).toEqual([]);
  });

  it('rejects bad flags with a clear message and exit code 2', async () => {
    for (const [args, message] of [
      [['--turns', '0'], /--turns: "0" is not a whole number from 1/],
      [['--host-ram', 'abc'], /--host-ram: "abc" is not a size/],
      [['--sessions', '9'], /--sessions: "9" is not a whole number from 1 to 8/],
      [['--headroom', 'lots'], /--headroom/],
      [['--sample-interval', '0'], /--sample-interval must be more than 0/],
      [['--frobnicate'], /frobnicate/],
    ] as const) {
      const r = await berth(['plan', ...args]);
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it('explains itself under berth help plan', async () => {
    const r = await berth(['help', 'plan']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--host-overhead SIZE');
  });
});

describe('the sizing arithmetic', () => {
  it('rounds peak plus headroom up to a 64 MiB step', () => {
    expect(suggestSessionCeiling(200 * MIB, 25)).toBe(256 * MIB);
    expect(suggestSessionCeiling(256 * MIB, 25)).toBe(320 * MIB);
    expect(suggestSessionCeiling(0, 25)).toBe(64 * MIB);
    expect(() => suggestSessionCeiling(-1, 25)).toThrow(RangeError);
  });

  it('answers the formula with the default and the suggested ceiling', () => {
    const plan = planSizing(200 * MIB, { hostRamBytes: 24 * GIB });
    expect(plan.withDefaultCeiling.agentsPerHost).toBe(23);
    expect(plan.suggestedCeilingBytes).toBe(256 * MIB);
    expect(plan.withSuggestedCeiling.agentsPerHost).toBe(92);
    expect(
      planSizing(200 * MIB, { hostRamBytes: GIB, overheadBytes: 2 * GIB }).withSuggestedCeiling.agentsPerHost,
    ).toBe(0);
  });
});
