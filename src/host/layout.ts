/**
 * Where a host keeps its agents' files under its data dir, and the environment its agents run with.
 *
 * Layout (the parts the host makes; the stores, the blob store and groups add their own entries):
 *   berth.lock                                      the pid of the host using this data dir (data-dir-lock.ts)
 *   workspaces/<tenant>/<session id>/               a session's cwd
 *   tenants/<tenant>/claude-config/                 the tenant's CLAUDE_CONFIG_DIR, shared by its sessions
 *                                                   and by the warm spares prewarmed for it
 *   tenants/<tenant>/home/                          the tenant's HOME
 *   tenants/<tenant>/agents/<session id>/{claude-config,home}/
 *                                                   a multi-agent session's own: agents sharing a container
 *                                                   must not share those
 *   tenants/<tenant>/tasks/<task id>/{work,claude-config,home}/
 *                                                   one ephemeral task's (work/ is its cwd); removed when it ends
 *   tenants/_tasks/<uuid>/{claude-config,home}/     a task spare's, which the task that claims it takes over
 *
 * Invariants:
 * - every subprocess a host starts has its CLAUDE_CONFIG_DIR under `tenants/`, and nothing else does: that
 *   is how the orphan sweep and `killAllNow` recognise this data dir's processes;
 * - `_tasks` is not a tenant id (ids start with a letter or digit), so task spares never mix with a tenant;
 * - no spare outlives its host, so `tenants/_tasks/` holds nothing a new host needs.
 */
import { randomUUID } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { buildAgentEnv } from '../session/environment.js';
import type { SessionPaths } from '../session/session.js';
import type { Pattern, SessionRecord } from '../stores/types.js';

/** The warm pool's key for spares that ephemeral tasks claim, and their directory under `tenants/`. */
export const TASK_SPARES = '_tasks';

export interface DataDirLayoutOptions {
  dataDir: string;
  /** The Messages API the subprocesses use. */
  modelEndpoint: string;
  /** The API key the subprocesses send. */
  modelApiKey: string;
  /** `PATH` for the agents' tools. */
  agentPath: string;
}

/** Directories made for one spare alone; whoever claims it takes them over. */
export interface SpareDirs {
  root: string;
  configDir: string;
  home: string;
}

export class DataDirLayout {
  /** The data dir, absolute. */
  readonly root: string;

  constructor(private readonly options: DataDirLayoutOptions) {
    this.root = path.resolve(options.dataDir);
  }

  /**
   * A session's directories. Sessions of a tenant share its config dir and home, except multi-agent
   * sessions, which get their own.
   */
  sessionPaths(record: Pick<SessionRecord, 'id' | 'tenant'> & { pattern?: Pattern }): SessionPaths {
    const own =
      record.pattern === 'multi-agent'
        ? path.join(this.root, 'tenants', record.tenant, 'agents', record.id)
        : path.join(this.root, 'tenants', record.tenant);
    return {
      cwd: path.join(this.root, 'workspaces', record.tenant, record.id),
      configDir: path.join(own, 'claude-config'),
      home: path.join(own, 'home'),
    };
  }

  /** The directories of one ephemeral task; the caller removes `root` when the task ends. */
  taskPaths(tenant: string, taskId: string): SessionPaths & { root: string } {
    const root = path.join(this.root, 'tenants', tenant, 'tasks', taskId);
    return {
      root,
      cwd: path.join(root, 'work'),
      configDir: path.join(root, 'claude-config'),
      home: path.join(root, 'home'),
    };
  }

  /**
   * The environment and start directory of a spare prewarmed for `tenant` (a tenant, or
   * {@link TASK_SPARES}), its directories made on disk. A tenant's spare runs in the tenant's config dir
   * and home, and starts in the tenant's workspaces directory, under which the cwd of the session that
   * claims it will be (a sandboxed spare sees that directory, so every workspace of its tenant: the tenant
   * is the unit of isolation). A task spare gets directories of its own (`dirs`), which the task that
   * claims it takes over.
   */
  async spareEnvironment(
    tenant: string,
  ): Promise<{ env: Record<string, string>; cwd: string; dirs?: SpareDirs }> {
    if (tenant === TASK_SPARES) {
      const root = path.join(this.taskSparesRoot, randomUUID());
      const dirs = { root, configDir: path.join(root, 'claude-config'), home: path.join(root, 'home') };
      await ensureDirs({ ...dirs, cwd: root });
      return { env: this.agentEnv(dirs), cwd: root, dirs };
    }
    const paths = this.sessionPaths({ tenant, id: 'spare' });
    const cwd = path.dirname(paths.cwd);
    await ensureDirs({ ...paths, cwd });
    return { env: this.agentEnv(paths), cwd };
  }

  /** Where task spares' directories are; a new host removes what an earlier one left. */
  get taskSparesRoot(): string {
    return path.join(this.root, 'tenants', TASK_SPARES);
  }

  /** The subprocess environment for the given directories (see `buildAgentEnv`). */
  agentEnv(paths: Pick<SessionPaths, 'configDir' | 'home'>): Record<string, string> {
    return buildAgentEnv({
      modelEndpoint: this.options.modelEndpoint,
      apiKey: this.options.modelApiKey,
      configDir: paths.configDir,
      home: paths.home,
      path: this.options.agentPath,
    });
  }

  /** Whether an environment is one a host on this data dir gave a subprocess (see the invariants). */
  startedHere(env: readonly string[]): boolean {
    const prefix = `CLAUDE_CONFIG_DIR=${path.join(this.root, 'tenants')}${path.sep}`;
    return env.some((v) => v.startsWith(prefix));
  }
}

export async function ensureDirs(paths: SessionPaths): Promise<void> {
  await Promise.all([paths.cwd, paths.configDir, paths.home].map((dir) => mkdir(dir, { recursive: true })));
}
