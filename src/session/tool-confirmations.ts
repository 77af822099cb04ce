/**
 * The bridge between the CLI's permission requests (`canUseTool`) and the API's tool confirmations.
 *
 * A tool use that needs a confirmation is announced as `agent.tool_use` (once, whether the CLI asks
 * before or after its assistant message is read), and the turn pauses until the client answers with
 * `user.tool_confirmation` naming that event's id (as Managed Agents does: the CLI's own tool use id
 * never reaches a client). No answer within the confirmation timeout, an interrupt, the turn's abort,
 * the subprocess ending or the session closing all answer "deny": a confirmation never hangs.
 */
import type { CanUseTool, PermissionResult } from '@anthropic-ai/claude-agent-sdk';
import { BerthError } from '../errors.js';
import type { NewEvent } from './events.js';
import type { SessionEventStream } from './event-stream.js';

export interface ToolConfirmationsOptions {
  sessionId: string;
  events: SessionEventStream;
  /**
   * Tools (CLI names) whose every use asks (`AgentConfig.ask_tools`): their `agent.tool_use` says so when
   * it is emitted, before the CLI's permission request arrives (the CLI reports the call first).
   */
  askTools?: Pick<ReadonlySet<string>, 'has'>;
  /**
   * The agent's MCP server a tool (CLI name) belongs to, undefined for any other tool (a group's bus
   * included): its `agent.tool_use` and `agent.tool_result` name the server (`mcp_server_name`).
   */
  mcpServerOf?: (toolName: string) => string | undefined;
  /** How long a confirmation may wait before it is a deny. */
  timeoutMs: number;
  isClosed: () => boolean;
  /** A tool use now waits for a confirmation; `eventIds` are every waiting tool use's event id. */
  onWaiting: (eventIds: string[]) => void;
  /** The last waiting tool use was answered: the turn goes on. */
  onAllAnswered: () => void;
}

interface Pending {
  decide: (result: PermissionResult) => void;
}

export class ToolConfirmations {
  /** `agent.tool_use` event id -> the tool use waiting for its confirmation. */
  private readonly pending = new Map<string, Pending>();
  /** The CLI's tool_use_id -> the id of its `agent.tool_use` event. */
  private readonly announced = new Map<string, string>();
  /** The CLI's tool_use_id -> the agent's MCP server whose tool it calls: its result names it too. */
  private readonly mcpServers = new Map<string, string>();
  /**
   * Tool uses announced as asking (`ask_tools`) that the CLI has not asked about yet: the CLI reports the
   * call before it asks, and a client may answer at once. Event id -> the answer, once it came.
   */
  private readonly expected = new Map<string, PermissionResult | undefined>();

  constructor(private readonly options: ToolConfirmationsOptions) {}

  /** The `agent.tool_use` event ids of the tool uses waiting for a confirmation. */
  get waiting(): string[] {
    return [...this.pending.keys()];
  }

  /** Throws unless every confirmation in the batch answers a waiting tool use (by its event id), each once. */
  check(events: readonly { type: string; tool_use_id?: string }[]): void {
    const answered = new Set<string>();
    for (const event of events) {
      if (event.type !== 'user.tool_confirmation' || event.tool_use_id === undefined) continue;
      const id = event.tool_use_id;
      const early = this.expected.has(id) && this.expected.get(id) === undefined;
      if ((!this.pending.has(id) && !early) || answered.has(id)) {
        throw new BerthError(
          'tool_use_not_pending',
          `Tool use ${event.tool_use_id} is not waiting for a confirmation in session ${this.options.sessionId}`,
        );
      }
      answered.add(event.tool_use_id);
    }
  }

  /** Answers the tool use announced by the `agent.tool_use` event `eventId` (kept if the CLI has not asked yet). */
  answer(eventId: string, result: 'allow' | 'deny', message?: string): void {
    const decision: PermissionResult =
      result === 'allow'
        ? { behavior: 'allow' }
        : { behavior: 'deny', message: message ?? 'The user denied this tool use.' };
    const pending = this.pending.get(eventId);
    if (pending) pending.decide(decision);
    else if (this.expected.has(eventId)) this.expected.set(eventId, decision);
  }

  /** Denies every waiting tool use; with `interrupt` the CLI also stops the turn. */
  denyAll(message: string, interrupt: boolean): void {
    for (const pending of this.pending.values()) pending.decide({ behavior: 'deny', message, interrupt });
  }

  /** Emits the events of a CLI message; an `agent.tool_use` only unless `canUseTool` announced it already. */
  emitEvents(events: readonly NewEvent[]): void {
    for (const event of events) {
      if (event.type === 'agent.tool_result') {
        // A result points at its tool use's event, the id clients know it by.
        const eventId = this.announced.get(event.tool_use_id);
        const server = this.mcpServers.get(event.tool_use_id);
        this.options.events.emit({
          ...event,
          ...(eventId && { tool_use_event_id: eventId }),
          ...(server && { mcp_server_name: server }),
        });
      } else if (event.type !== 'agent.tool_use') {
        this.options.events.emit(event);
      } else if (!this.announced.has(event.tool_use_id)) {
        const asks = this.options.askTools?.has(event.name) === true;
        const server = this.noteMcp(event.tool_use_id, event.name);
        const [stored] = this.options.events.emit({
          ...event,
          ...(asks && { requires_confirmation: true }),
          ...(server && { mcp_server_name: server }),
        });
        if (stored) this.announced.set(event.tool_use_id, stored.id);
        if (stored && asks) this.expected.set(stored.id, undefined);
      }
    }
  }

  /** A turn ended: its tool uses will not be asked about again. */
  endTurn(): void {
    this.announced.clear();
    this.mcpServers.clear();
    this.expected.clear();
  }

  /** The agent's MCP server of a tool use, remembered for its result. */
  private noteMcp(toolUseId: string, toolName: string): string | undefined {
    const server = this.options.mcpServerOf?.(toolName);
    if (server) this.mcpServers.set(toolUseId, server);
    return server;
  }

  readonly canUseTool: CanUseTool = async (toolName, input, { signal, toolUseID }) => {
    if (this.options.isClosed()) return { behavior: 'deny', message: 'The session was closed.' };
    if (!this.announced.has(toolUseID)) {
      const server = this.noteMcp(toolUseID, toolName);
      const [stored] = this.options.events.emit({
        type: 'agent.tool_use',
        tool_use_id: toolUseID,
        name: toolName,
        input,
        requires_confirmation: true,
        ...(server && { mcp_server_name: server }),
      });
      this.announced.set(toolUseID, stored?.id ?? toolUseID);
    }
    const eventId = this.announced.get(toolUseID) ?? toolUseID;
    const early = this.expected.get(eventId);
    this.expected.delete(eventId);
    if (early) return early.behavior === 'allow' ? { behavior: 'allow', updatedInput: input } : early;
    const decision = new Promise<PermissionResult>((resolve) => {
      let settled = false;
      const decide = (result: PermissionResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.pending.delete(eventId);
        resolve(result);
      };
      const timer = setTimeout(
        () =>
          decide({ behavior: 'deny', message: 'No confirmation arrived in time; the tool use was denied.' }),
        this.options.timeoutMs,
      );
      const onAbort = (): void => decide({ behavior: 'deny', message: 'The turn was aborted.' });
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(eventId, { decide });
    });
    this.options.onWaiting(this.waiting);
    const result = await decision;
    if (this.pending.size === 0) this.options.onAllAnswered();
    return result.behavior === 'allow' ? { behavior: 'allow', updatedInput: input } : result;
  };
}
