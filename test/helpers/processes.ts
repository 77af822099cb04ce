/**
 * The processes a test left: Berth subprocess trees (every process in one carries the tree marker)
 * recognised by their config dir.
 */
import path from 'node:path';
import { findProcesses, treeMarkerOf, type ProcessInfo } from '../../src/sandbox/process-tree.js';

/** Live processes of Berth subprocess trees whose config dir is under `dir`. */
export function markedProcessesUnder(dir: string): Promise<ProcessInfo[]> {
  const prefix = `CLAUDE_CONFIG_DIR=${dir}/`;
  return findProcesses((p) => treeMarkerOf(p.env) !== undefined && p.env.some((v) => v.startsWith(prefix)));
}

/** The pids of processes some host started under `dataDir`: its tenants' config dirs, spares and tasks included. */
export async function hostProcesses(dataDir: string): Promise<number[]> {
  return (await markedProcessesUnder(path.join(dataDir, 'tenants'))).map((p) => p.pid);
}
