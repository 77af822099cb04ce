/**
 * A session's turns, one at a time: user messages wait here, and each is handed to the CLI only after
 * the previous turn has ended, so the CLI never merges two of them into one turn.
 */
import { AsyncResource } from 'node:async_hooks';
import type { SDKUserMessage } from '@anthropic-ai/claude-agent-sdk';
import { BerthError } from '../errors.js';
import type { ContentBlock } from './events.js';

/** User messages that may wait for their turn; more is a client out of control, not a conversation. */
export const MAX_QUEUED_MESSAGES = 100;

export interface Turn {
  readonly startedAt: number;
  /** Resolves when the turn has ended (its result, an error, or the session closing). */
  readonly done: Promise<void>;
  finish(): void;
  interrupted: boolean;
  /** The `session.error` type of a model request of the turn that failed (the turn failed with it). */
  failedWith?: string | undefined;
  /** The turn's async context, inside its span: the CLI's messages are handled in it (see `inTurn`). */
  scope?: AsyncResource | undefined;
}

export interface TurnQueueOptions {
  /** Runs one turn; resolves when it is over. */
  run: (message: SDKUserMessage, turn: Turn) => Promise<void>;
  isClosed: () => boolean;
  /** Called each time the queue has run dry. */
  onDrained: () => void;
  /** Wraps each turn's run (telemetry's span around it). */
  around?: ((run: () => Promise<void>) => Promise<void>) | undefined;
}

/**
 * A message waiting for its turn, with the async context of the call that sent it: the turn runs in it,
 * so that what is kept there (the HTTP request's span, the turn's parent) is the sender's, not that of
 * the call that started the pump, whose loop runs every turn queued behind the first.
 */
interface Waiting {
  readonly message: SDKUserMessage;
  readonly sender: AsyncResource;
}

export class TurnQueue {
  private readonly waiting: Waiting[] = [];
  private pumping = false;
  private turn: Turn | undefined;
  private notBusyWaiters: (() => void)[] = [];

  constructor(private readonly options: TurnQueueOptions) {}

  /** The turn in progress. */
  get current(): Turn | undefined {
    return this.turn;
  }

  /** Messages waiting for their turn. */
  get length(): number {
    return this.waiting.length;
  }

  /** True while a turn runs or messages wait for one. */
  get busy(): boolean {
    return this.turn !== undefined || this.pumping || this.waiting.length > 0;
  }

  /** Resolves once no turn runs and no message waits (at once when that is so already). */
  whenNotBusy(): Promise<void> {
    if (!this.busy) return Promise.resolve();
    return new Promise((resolve) => this.notBusyWaiters.push(resolve));
  }

  /** Throws `queue_full` unless `count` more messages may wait. */
  checkRoom(count: number, sessionId: string): void {
    if (this.waiting.length + count <= MAX_QUEUED_MESSAGES) return;
    throw new BerthError(
      'queue_full',
      `Session ${sessionId} already has ${this.waiting.length} messages waiting; at most ${MAX_QUEUED_MESSAGES} may wait`,
    );
  }

  /**
   * Runs `fn` in the current turn's async context, so that what it does (storing the turn's events) is
   * traced inside the turn, not inside whatever started the subprocess's reader (an earlier turn).
   */
  inTurn(fn: () => void): void {
    const scope = this.turn?.scope;
    if (scope) scope.runInAsyncScope(fn);
    else fn();
  }

  /** Queues a user message for its turn. */
  push(content: string | ContentBlock[]): void {
    this.waiting.push({
      message: {
        type: 'user',
        message: { role: 'user', content: content as SDKUserMessage['message']['content'] },
        parent_tool_use_id: null,
      },
      sender: new AsyncResource('berth.turn'),
    });
  }

  /** The turn in progress has ended (it stays `done` for its waiters). */
  endCurrent(turn: Turn): void {
    if (this.turn === turn) this.turn = undefined;
  }

  /** Drops the waiting messages (the session is closing). */
  clear(): void {
    this.waiting.length = 0;
  }

  /** Runs the waiting messages' turns, in order, unless that is under way already. */
  pump(): void {
    if (this.pumping || this.options.isClosed()) return;
    this.pumping = true;
    void (async () => {
      try {
        // Start turns after the current call stack (an HTTP handler) has answered: spawning a subprocess
        // takes ~20 ms of synchronous work that the client's 202 should not wait for.
        await new Promise<void>((resolve) => setImmediate(resolve));
        for (let next = this.waiting.shift(); next; next = this.waiting.shift()) {
          if (this.options.isClosed()) break;
          const turn = newTurn();
          this.turn = turn;
          try {
            const { message, sender } = next;
            const run = (): Promise<void> => {
              turn.scope = new AsyncResource('berth.turn');
              return this.options.run(message, turn);
            };
            await sender.runInAsyncScope(() => (this.options.around ? this.options.around(run) : run()));
          } finally {
            this.endCurrent(turn);
          }
        }
      } finally {
        this.pumping = false;
        this.options.onDrained();
        if (!this.busy) for (const resolve of this.notBusyWaiters.splice(0)) resolve();
      }
    })();
  }
}

function newTurn(): Turn {
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  return { startedAt: Date.now(), done, finish, interrupted: false };
}
