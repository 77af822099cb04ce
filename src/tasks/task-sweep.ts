/**
 * What a crashed host left of its tasks: their directories (their processes are the orphan sweep's)
 * are removed, and a task that never stored a final record is marked `failed` (`host_restarted`).
 */
import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { ID_PATTERN } from '../ids.js';
import { FINAL_STATUSES, TASK_ID_PATTERN, newTaskRecord } from './task.js';
import type { TaskStore } from './task-store.js';

export interface TaskSweepOptions {
  /** The host's data dir, whose `tenants/*\/tasks/` a crash may have left directories in. */
  dataDir: string;
  /** Where a task's directories are (see `TaskHost.taskPaths`). */
  host: { taskPaths(tenant: string, taskId: string): { root: string } };
  store: TaskStore;
  report: (err: unknown) => void;
}

/** Sweeps every tenant's task directories; resolves to how many there were. Call once at start. */
export async function sweepTaskDirs(options: TaskSweepOptions): Promise<number> {
  const { host, store, report } = options;
  const tenantsDir = path.join(path.resolve(options.dataDir), 'tenants');
  let swept = 0;
  for (const tenant of await readdir(tenantsDir).catch(() => [] as string[])) {
    if (!ID_PATTERN.test(tenant)) continue;
    const tasksDir = path.dirname(host.taskPaths(tenant, 'task_x').root);
    for (const id of await readdir(tasksDir).catch(() => [] as string[])) {
      if (!TASK_ID_PATTERN.test(id)) continue;
      swept += 1;
      try {
        const stored = await store.getRecord(tenant, id).catch(() => undefined);
        if (!stored || !FINAL_STATUSES.has(stored.status)) {
          const now = new Date().toISOString();
          // Without a stored record (the crash came before its first write) only the id is known.
          const known =
            stored ??
            newTaskRecord(
              { id, prompt: '', agent: {}, timeout_ms: 0, max_turns: null, warm_start: false },
              now,
            );
          await store.putRecord(tenant, {
            ...known,
            status: 'failed',
            error: {
              type: 'host_restarted',
              message: 'The host running this task stopped before it finished.',
            },
            finished_at: now,
          });
        }
      } catch (err) {
        report(err);
      }
      await rm(host.taskPaths(tenant, id).root, { recursive: true, force: true }).catch(report);
    }
  }
  return swept;
}
