/**
 * The processes a host on this data dir started, found by their environment (a CLAUDE_CONFIG_DIR under
 * `tenants/`, see layout.ts) rather than by pid, so that they are found after their host died too.
 * The sweep runs at start, holding the data dir's lock: without the lock, the processes it found could be
 * a live host's agents.
 */
import { rm } from 'node:fs/promises';
import { killMarkedProcessesNow, sweepMarkedProcesses } from '../sandbox/process-tree.js';
import type { DataDirLock } from './data-dir-lock.js';
import type { DataDirLayout } from './layout.js';

/**
 * Kills what an earlier host on this data dir left running (it was SIGKILLed, or crashed) and removes its
 * task spares' directories; returns how many processes it found.
 * @throws Error when `lock` is not this data dir's, held.
 */
export async function sweepOrphans(
  layout: DataDirLayout,
  lock: DataDirLock,
  options: { graceMs: number },
): Promise<number> {
  if (!lock.held || lock.dataDir !== layout.root) {
    throw new Error(`the orphan sweep of ${layout.root} needs that data dir's lock`);
  }
  const killed = await sweepMarkedProcesses((env) => layout.startedHere(env), options);
  // No spare outlives its host (layout.ts).
  await rm(layout.taskSparesRoot, { recursive: true, force: true });
  return killed;
}

/** SIGKILLs every process a host on this data dir started, synchronously: for an exit that cannot wait. */
export function killAllNow(layout: DataDirLayout): number {
  return killMarkedProcessesNow((env) => layout.startedHere(env));
}
