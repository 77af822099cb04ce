/**
 * The multi-agent groups of one host. A group is its agents' sessions (one per agent, pattern
 * `multi-agent`, on this host), a message bus between them and an optional shared directory. Groups
 * live in this host's memory only: after a restart the agents' sessions are still there as ordinary
 * sessions (and resume from their transcripts), the group, its bus and its stream are not.
 *
 * On-disk layout under the data dir:
 *   groups/<tenant>/<group id>/shared/                       the group's shared directory
 *   workspaces/<tenant>/<session id>/                        an agent's working directory
 *   tenants/<tenant>/agents/<session id>/{claude-config,home} an agent's CLAUDE_CONFIG_DIR and HOME
 * The last two are its session's (see `SessionHost.pathsFor`); deleting the group removes all three.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, realpath, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Options } from '@anthropic-ai/claude-agent-sdk';
import { BerthError, isBerthError } from '../errors.js';
import type { SessionHost } from '../host/session-host.js';
import { ID_PATTERN, newSessionId } from '../ids.js';
import type { Session, SessionPaths } from '../session/session.js';
import type { AgentConfig } from '../stores/types.js';
import { BUS_SERVER_NAME, BUS_TOOLS, createBusMcpServer } from './bus-mcp.js';
import { Group, type GroupMember } from './group.js';
import type { RenderGroupEvent } from './group-events.js';
import { checkGroupIsolation } from './group-isolation.js';
import { groupPrompt } from './group-prompts.js';
import { MessageBus, validateAgentName } from './message-bus.js';

/** Fewest and most agents a group may have. */
export const MIN_GROUP_AGENTS = 2;
export const MAX_GROUP_AGENTS = 16;

/** One agent of a new group: its name and its session's agent config. */
export interface GroupAgentInput extends AgentConfig {
  name: string;
}

export interface CreateGroupInput {
  agents: readonly GroupAgentInput[];
  /** Give the agents a shared directory. @default true */
  shared_dir?: boolean | undefined;
  title?: string | undefined;
}

export interface GroupRegistryOptions {
  host: SessionHost;
  /** The host's data dir (the shared directories go under `groups/`). */
  dataDir: string;
  /** Failures no client sees (a cleanup step, a bus listener). */
  onError?: (err: unknown) => void;
  /** Per group; see `Group`. @default 10000 */
  maxBufferedEvents?: number;
  /** How clients see a group's events; see `Group`. @default the event as stored, as JSON */
  renderEvent?: RenderGroupEvent;
}

/** A group's failures: to `onError` when given, else the host's log with `tenant` and `group_id`. */
function groupErrors(options: GroupRegistryOptions, tenant: string, id: string): (err: unknown) => void {
  if (options.onError) return options.onError;
  const log = options.host.telemetry.log.child({ tenant, group_id: id });
  return (err) => log.error({ err }, 'group failure');
}

function newGroupId(): string {
  return `grp_${randomBytes(15).toString('base64url')}`;
}

/** The directory that holds only this agent's config dir and home (`tenants/<t>/agents/<id>`). */
function agentOwnDir(paths: SessionPaths, sessionId: string): string | undefined {
  const dir = path.dirname(paths.configDir);
  // Only a multi-agent session has a directory of its own; never remove a tenant's shared one.
  return path.basename(dir) === sessionId && path.basename(path.dirname(dir)) === 'agents' ? dir : undefined;
}

/** @throws BerthError `invalid_request` unless there are 2..16 agents with valid, distinct names. */
export function validateGroupAgents(agents: readonly GroupAgentInput[]): void {
  if (agents.length < MIN_GROUP_AGENTS || agents.length > MAX_GROUP_AGENTS) {
    throw new BerthError(
      'invalid_request',
      `A group has ${MIN_GROUP_AGENTS} to ${MAX_GROUP_AGENTS} agents, not ${agents.length}`,
    );
  }
  const seen = new Map<string, string>();
  for (const agent of agents) {
    validateAgentName(agent.name);
    // Names differing only in case would be told apart by the bus but easily confused by a model.
    const key = agent.name.toLowerCase();
    const earlier = seen.get(key);
    if (earlier !== undefined) {
      throw new BerthError(
        'invalid_request',
        `Agent names must be unique (letter case aside): ${JSON.stringify(earlier)} and ${JSON.stringify(agent.name)}`,
      );
    }
    seen.set(key, agent.name);
  }
}

export class GroupRegistry {
  private readonly groups = new Map<string, Group>();
  private readonly dataDir: string;

  constructor(private readonly options: GroupRegistryOptions) {
    this.dataDir = path.resolve(options.dataDir);
  }

  /**
   * Creates the agents' sessions (no subprocess starts until an agent's first turn) after checking that
   * no two agents share a directory. Nothing is left behind when creation fails.
   */
  async create(tenant: string, input: CreateGroupInput): Promise<Group> {
    const { host } = this.options;
    validateGroupAgents(input.agents);
    const id = newGroupId();
    const root = this.groupRoot(tenant, id);
    const sharedPath = input.shared_dir === false ? null : path.join(root, 'shared');
    const plans = input.agents.map((agent) => {
      const sessionId = newSessionId();
      const paths = host.pathsFor({ tenant, id: sessionId, pattern: 'multi-agent' });
      return { agent, name: agent.name, sessionId, paths, env: host.agentEnvFor(paths) };
    });
    checkGroupIsolation(plans, sharedPath);

    const names = plans.map((p) => p.name);
    const bus = new MessageBus({ agents: names, onListenerError: groupErrors(this.options, tenant, id) });
    const created: Session[] = [];
    try {
      let sharedDir: string | null = null;
      if (sharedPath !== null) {
        await mkdir(sharedPath, { recursive: true });
        // The CLI follows no link at a working directory it is given (sdk.d.ts): give it the real path.
        sharedDir = await realpath(sharedPath);
      }
      const results = await Promise.allSettled(
        plans.map(async (plan) => {
          const { name: _name, system_prompt: systemPrompt, ...config } = plan.agent;
          const paragraph = groupPrompt(
            plan.name,
            names.filter((n) => n !== plan.name),
            sharedDir,
          );
          const agent: AgentConfig = {
            ...config,
            allowed_tools: [...new Set([...(config.allowed_tools ?? []), ...BUS_TOOLS])],
            // The session's own system_prompt wins over processOptions, so a custom one carries the
            // paragraph itself; without one the default Claude Code prompt stays, with it appended.
            ...(systemPrompt !== undefined && { system_prompt: `${systemPrompt}\n\n${paragraph}` }),
          };
          const processOptions = (): Partial<Options> => ({
            // A new server per spawn: one config serves one live query only (see bus-mcp.ts).
            mcpServers: { [BUS_SERVER_NAME]: createBusMcpServer(bus, plan.name) },
            ...(sharedDir !== null && { additionalDirectories: [sharedDir] }),
            ...(systemPrompt === undefined && {
              systemPrompt: { type: 'preset', preset: 'claude_code', append: paragraph },
            }),
          });
          const session = await host.create(
            tenant,
            {
              id: plan.sessionId,
              title: `${input.title ?? id}: ${plan.name}`,
              metadata: { group: id, agent: plan.name },
              pattern: 'multi-agent',
              agent,
            },
            { processOptions },
          );
          created.push(session);
          return session;
        }),
      );
      const failed = results.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      const members: GroupMember[] = plans.map((plan, i) => ({
        name: plan.name,
        session: (results[i] as PromiseFulfilledResult<Session>).value,
        paths: plan.paths,
      }));
      const group = new Group({
        id,
        tenant,
        title: input.title ?? null,
        members,
        bus,
        sharedDir,
        ...(this.options.maxBufferedEvents !== undefined && {
          maxBufferedEvents: this.options.maxBufferedEvents,
        }),
        onError: groupErrors(this.options, tenant, id),
        ...(this.options.renderEvent && { renderEvent: this.options.renderEvent }),
      });
      this.groups.set(this.key(tenant, id), group);
      return group;
    } catch (err) {
      await Promise.allSettled(created.map((s) => host.delete(tenant, s.id)));
      await Promise.allSettled([
        rm(root, { recursive: true, force: true }),
        ...plans.flatMap((p) => {
          const own = agentOwnDir(p.paths, p.sessionId);
          return [
            rm(p.paths.cwd, { recursive: true, force: true }),
            own && rm(own, { recursive: true, force: true }),
          ];
        }),
      ]);
      bus.close();
      throw err;
    }
  }

  /** The tenant's group; another tenant's is simply not found. */
  get(tenant: string, id: string): Group {
    if (!ID_PATTERN.test(id)) {
      throw new BerthError(
        'invalid_id',
        `${JSON.stringify(id.slice(0, 80))} is not a group id: ids match ${ID_PATTERN.source}`,
      );
    }
    const group = this.groups.get(this.key(tenant, id));
    if (!group) throw new BerthError('group_not_found', `No group ${JSON.stringify(id)}`);
    return group;
  }

  /** The tenant's groups, newest first. */
  list(tenant: string): Group[] {
    return [...this.groups.values()].filter((g) => g.tenant === tenant).reverse();
  }

  /**
   * Deletes the group: stops its rounds, deletes every agent's session (its subprocess tree, record,
   * events, transcript and working directory), removes the agents' config dirs and homes and the shared
   * directory, closes the bus and ends the stream. Every step runs even if one fails; the first failure
   * is thrown at the end.
   */
  async delete(tenant: string, id: string): Promise<void> {
    const group = this.get(tenant, id);
    // Gone for clients at once: a second DELETE, a late event or a GET get 404 while this runs.
    this.groups.delete(this.key(tenant, id));
    const errors: unknown[] = [];
    const attempt = async (step: () => Promise<unknown>): Promise<void> => {
      try {
        await step();
      } catch (err) {
        errors.push(err);
      }
    };
    await attempt(() =>
      group.stop(async () => {
        await Promise.all(
          group.agents.map((a) =>
            attempt(async () => {
              try {
                await this.options.host.delete(tenant, a.session.id);
              } catch (err) {
                // Deleted through /v1/sessions already: nothing left of it to end.
                if (!isBerthError(err, 'session_not_found')) throw err;
              }
            }),
          ),
        );
      }),
    );
    await Promise.all([
      attempt(() => rm(this.groupRoot(tenant, id), { recursive: true, force: true })),
      ...group.agents.flatMap((a) => {
        const own = agentOwnDir(a.paths, a.session.id);
        return [
          attempt(() => rm(a.paths.cwd, { recursive: true, force: true })),
          ...(own ? [attempt(() => rm(own, { recursive: true, force: true }))] : []),
        ];
      }),
    ]);
    await attempt(() => Promise.resolve(group.finish('deleted')));
    if (errors.length > 0) {
      // Only the first reaches the caller; the others would be lost without the group's log.
      const report = groupErrors(this.options, tenant, id);
      for (const err of errors.slice(1)) report(err);
      throw errors[0];
    }
  }

  private groupRoot(tenant: string, id: string): string {
    return path.join(this.dataDir, 'groups', tenant, id);
  }

  private key(tenant: string, id: string): string {
    return `${tenant}/${id}`;
  }
}
