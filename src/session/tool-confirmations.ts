/**
 * The bridge between the CLI's permission requests (`canUseTool`) and the API's tool confirmations.
 *
 * A tool use that needs a confirmation is announced as `agent.tool_use` (once, whether the CLI asks
 * before or after its assistant message is read), and the turn pauses until the client answers with
 * `user.tool_confirmation`. No answer within the confirmation timeout, an interrupt, the turn's abort,
 * the subprocess ending or the session closing all answer "deny": a confirmation never hangs.
 */
import type { CanUseTool, PermissionResult } from '@anthropic-ai/claude-agent-sdk';
import { BerthError } from '../errors.js';
import type { NewEvent } from './events.js';
import type { SessionEventStream } from './event-stream.js';

export interface ToolConfirmationsOptions {
  sessionId: string;
  events: SessionEventStream;
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
  private readonly pending = new Map<string, Pending>();
  /** tool_use_id -> id of its `agent.tool_use` event, for `requires_action.event_ids`. */
  private readonly announced = new Map<string, string>();

  constructor(private readonly options: ToolConfirmationsOptions) {}

  /** Tool uses waiting for a confirmation. */
  get waiting(): string[] {
    return [...this.pending.keys()];
  }

  /** Throws unless every confirmation in the batch answers a waiting tool use, each at most once. */
  check(events: readonly { type: string; tool_use_id?: string }[]): void {
    const answered = new Set<string>();
    for (const event of events) {
      if (event.type !== 'user.tool_confirmation' || event.tool_use_id === undefined) continue;
      if (!this.pending.has(event.tool_use_id) || answered.has(event.tool_use_id)) {
        throw new BerthError(
          'tool_use_not_pending',
          `Tool use ${event.tool_use_id} is not waiting for a confirmation in session ${this.options.sessionId}`,
        );
      }
      answered.add(event.tool_use_id);
    }
  }

  answer(toolUseId: string, result: 'allow' | 'deny', message?: string): void {
    this.pending
      .get(toolUseId)
      ?.decide(
        result === 'allow'
          ? { behavior: 'allow' }
          : { behavior: 'deny', message: message ?? 'The user denied this tool use.' },
      );
  }

  /** Denies every waiting tool use; with `interrupt` the CLI also stops the turn. */
  denyAll(message: string, interrupt: boolean): void {
    for (const pending of this.pending.values()) pending.decide({ behavior: 'deny', message, interrupt });
  }

  /** Emits the events of a CLI message; an `agent.tool_use` only unless `canUseTool` announced it already. */
  emitEvents(events: readonly NewEvent[]): void {
    for (const event of events) {
      if (event.type !== 'agent.tool_use') {
        this.options.events.emit(event);
      } else if (!this.announced.has(event.tool_use_id)) {
        const [stored] = this.options.events.emit(event);
        if (stored) this.announced.set(event.tool_use_id, stored.id);
      }
    }
  }

  /** A turn ended: its tool uses will not be asked about again. */
  endTurn(): void {
    this.announced.clear();
  }

  readonly canUseTool: CanUseTool = async (toolName, input, { signal, toolUseID }) => {
    if (this.options.isClosed()) return { behavior: 'deny', message: 'The session was closed.' };
    if (!this.announced.has(toolUseID)) {
      const [stored] = this.options.events.emit({
        type: 'agent.tool_use',
        tool_use_id: toolUseID,
        name: toolName,
        input,
        requires_confirmation: true,
      });
      this.announced.set(toolUseID, stored?.id ?? toolUseID);
    }
    const decision = new Promise<PermissionResult>((resolve) => {
      let settled = false;
      const decide = (result: PermissionResult): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        this.pending.delete(toolUseID);
        resolve(result);
      };
      const timer = setTimeout(
        () =>
          decide({ behavior: 'deny', message: 'No confirmation arrived in time; the tool use was denied.' }),
        this.options.timeoutMs,
      );
      const onAbort = (): void => decide({ behavior: 'deny', message: 'The turn was aborted.' });
      signal.addEventListener('abort', onAbort, { once: true });
      this.pending.set(toolUseID, { decide });
    });
    this.options.onWaiting(this.waiting.map((id) => this.announced.get(id) ?? id));
    const result = await decision;
    if (this.pending.size === 0) this.options.onAllAnswered();
    return result.behavior === 'allow' ? { behavior: 'allow', updatedInput: input } : result;
  };
}
