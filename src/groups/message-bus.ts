/**
 * The message bus of one multi-agent group: each agent has an inbox; `send` appends to the recipient's
 * inbox (or to every other agent's, for `to: "*"`), `read` drains the caller's own inbox, oldest first.
 * Everything is in memory and synchronous: the agents of a group share one container and one Berth
 * process (the multi-agent pattern, README), so a message is delivered the moment the tool call runs.
 *
 * The agents reach the bus through tools (see `bus-mcp.ts`); every failure here is a {@link BerthError}
 * whose message is written for the agent that made the call, since it is what the tool reports back.
 */
import { randomBytes } from 'node:crypto';
import { BerthError, describeError } from '../errors.js';
import { ID_PATTERN } from '../ids.js';

/** Agent names: the same rule as session ids, so a name is safe as a path segment, a key and a URL part. */
export const AGENT_NAME_PATTERN = ID_PATTERN;

/** The recipient that means "every agent of the group except the sender". */
export const BROADCAST = '*';

/**
 * @default for {@link MessageBusOptions.maxTextBytes}: 32 KiB of UTF-8. A message is read through a tool
 * result, and the CLI replaces a tool result over 50,000 characters with a preview and the path of a file
 * holding the rest (measured with 0.3.330), which an agent may not be allowed to read; 32 KiB leaves
 * room for the JSON around a message and for escaping.
 */
export const DEFAULT_MAX_TEXT_BYTES = 32 * 1024;

/** @default for {@link MessageBusOptions.maxInboxMessages}. */
export const DEFAULT_MAX_INBOX_MESSAGES = 1000;

/** A message as the bus delivers it to listeners. */
export interface BusMessage {
  /** Unique within the process (`msg_...`); a broadcast has one id for all its copies. */
  id: string;
  from: string;
  /** The recipient as the sender named it: an agent, or {@link BROADCAST}. */
  to: string;
  /** The agents whose inboxes received it (one entry unless broadcast). */
  recipients: string[];
  text: string;
  /** ISO 8601, when `send` accepted it. */
  sent_at: string;
}

/** A message as its recipient reads it. */
export interface InboxMessage {
  id: string;
  from: string;
  text: string;
  sent_at: string;
}

/** Options of {@link MessageBus.read}. */
export interface ReadOptions {
  /**
   * Stop before the message that would take the summed `JSON.stringify` length of the returned messages
   * over this many characters (a reader's tool result is that JSON). The first message is always
   * returned, so a reader makes progress whatever the budget; the rest stays unread.
   * @default unlimited
   */
  maxJsonChars?: number;
  /** At most this many messages. @default unlimited */
  limit?: number;
}

/** What {@link MessageBus.read} returns. */
export interface ReadResult {
  /** Oldest first; removed from the inbox. */
  messages: InboxMessage[];
  /** Messages still unread after this read (left by `limit` or `maxJsonChars`). */
  remaining: number;
}

export type MessageListener = (message: BusMessage) => void;

export interface MessageBusOptions {
  /** The group's agents; more can join with {@link MessageBus.addAgent}. @default [] */
  agents?: readonly string[];
  /** Largest message text in UTF-8 bytes (see {@link DEFAULT_MAX_TEXT_BYTES}). @default 32768 */
  maxTextBytes?: number;
  /**
   * Most unread messages one inbox holds; a send to a full inbox fails so that an agent that never
   * reads cannot grow the host's memory without bound. @default 1000
   */
  maxInboxMessages?: number;
  /** Where a listener's exception goes: a failing listener must not fail a send that was delivered. */
  onListenerError?: (err: unknown) => void;
  /** The clock for `sent_at`. @default Date.now */
  now?: () => number;
}

function messageId(): string {
  return `msg_${randomBytes(12).toString('base64url')}`;
}

/** @throws BerthError `invalid_request` when `name` is not a valid agent name. */
export function validateAgentName(name: unknown): string {
  if (typeof name !== 'string' || !AGENT_NAME_PATTERN.test(name)) {
    throw new BerthError(
      'invalid_request',
      `Invalid agent name ${JSON.stringify(name)}: use 1-64 letters, digits, '_' or '-', starting with a letter or digit`,
    );
  }
  return name;
}

export class MessageBus {
  private readonly inboxes = new Map<string, InboxMessage[]>();
  private readonly listeners = new Set<MessageListener>();
  private readonly maxTextBytes: number;
  private readonly maxInboxMessages: number;
  private readonly now: () => number;
  private closed = false;

  constructor(private readonly options: MessageBusOptions = {}) {
    this.maxTextBytes = positiveInteger(options.maxTextBytes ?? DEFAULT_MAX_TEXT_BYTES, 'maxTextBytes');
    this.maxInboxMessages = positiveInteger(
      options.maxInboxMessages ?? DEFAULT_MAX_INBOX_MESSAGES,
      'maxInboxMessages',
    );
    this.now = options.now ?? Date.now;
    for (const agent of options.agents ?? []) this.addAgent(agent);
  }

  /** The group's agents, in the order they joined. */
  get agents(): string[] {
    return [...this.inboxes.keys()];
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Gives `name` an inbox.
   * @throws BerthError `invalid_request` for an invalid name, `session_exists` when the agent is already
   *   on the bus, `session_terminated` after {@link close}.
   */
  addAgent(name: string): void {
    this.assertOpen();
    validateAgentName(name);
    if (this.inboxes.has(name)) {
      throw new BerthError('session_exists', `Agent ${name} is already on this message bus`);
    }
    this.inboxes.set(name, []);
  }

  hasAgent(name: string): boolean {
    return this.inboxes.has(name);
  }

  /**
   * How many messages wait in `agent`'s inbox.
   * @throws BerthError `not_found` for an unknown agent, `session_terminated` after {@link close}.
   */
  unreadCount(agent: string): number {
    this.assertOpen();
    return this.inbox(agent, 'Agent').length;
  }

  /**
   * Delivers `text` from `from` to `to` (an agent, or {@link BROADCAST} for every other agent). Nothing is
   * delivered unless every recipient can take it. Listeners run after delivery.
   * @throws BerthError `not_found` for an unknown sender or recipient, `invalid_request` for an empty or
   *   non-string text or a broadcast with nobody to receive it, `body_too_large` for a text over
   *   `maxTextBytes`, `queue_full` when a recipient's inbox is full, `session_terminated` after
   *   {@link close}.
   */
  send(from: string, to: string, text: string): BusMessage {
    this.assertOpen();
    this.inbox(from, 'Sender');
    if (typeof text !== 'string' || text.length === 0) {
      throw new BerthError('invalid_request', 'The message text must be a non-empty string');
    }
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > this.maxTextBytes) {
      throw new BerthError(
        'body_too_large',
        `The message is ${bytes} bytes; at most ${this.maxTextBytes} bytes (UTF-8) may be sent at once`,
      );
    }
    const recipients = to === BROADCAST ? this.agents.filter((a) => a !== from) : [to];
    if (recipients.length === 0) {
      throw new BerthError('invalid_request', `No other agent is on the bus to receive a broadcast`);
    }
    const inboxes = recipients.map((r) => this.inbox(r, 'Recipient'));
    for (const [i, inbox] of inboxes.entries()) {
      if (inbox.length >= this.maxInboxMessages) {
        throw new BerthError(
          'queue_full',
          `The inbox of ${recipients[i]} is full (${this.maxInboxMessages} unread messages); ` +
            'nothing was sent. Try again after it has read its messages.',
        );
      }
    }
    const message: BusMessage = {
      id: messageId(),
      from,
      to,
      recipients,
      text,
      sent_at: new Date(this.now()).toISOString(),
    };
    for (const inbox of inboxes) {
      inbox.push({ id: message.id, from, text, sent_at: message.sent_at });
    }
    for (const listener of [...this.listeners]) {
      try {
        listener(message);
      } catch (err) {
        this.options.onListenerError?.(err);
      }
    }
    return message;
  }

  /**
   * Removes and returns the oldest unread messages of `agent`.
   * @throws BerthError `not_found` for an unknown agent, `session_terminated` after {@link close}.
   */
  read(agent: string, options: ReadOptions = {}): ReadResult {
    this.assertOpen();
    const inbox = this.inbox(agent, 'Agent');
    const limit = Math.min(options.limit ?? inbox.length, inbox.length);
    const budget = options.maxJsonChars;
    let count = 0;
    let chars = 0;
    while (count < limit) {
      const next = inbox[count];
      if (next === undefined) break;
      if (budget !== undefined) {
        chars += JSON.stringify(next).length;
        if (count > 0 && chars > budget) break;
      }
      count += 1;
    }
    const messages = inbox.splice(0, count);
    return { messages, remaining: inbox.length };
  }

  /** Calls `listener` with every message sent from now on. Returns the unsubscribe function. */
  onMessage(listener: MessageListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  /** Drops every inbox and listener (idempotent); later calls other than `close` throw. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.inboxes.clear();
    this.listeners.clear();
  }

  private assertOpen(): void {
    if (this.closed) throw new BerthError('session_terminated', 'The message bus of this group is closed');
  }

  private inbox(agent: string, role: 'Agent' | 'Sender' | 'Recipient'): InboxMessage[] {
    const inbox = this.inboxes.get(agent);
    if (inbox === undefined) {
      const known = this.agents.join(', ') || 'none';
      throw new BerthError(
        'not_found',
        `${role} ${describeName(agent)} is not an agent of this group (agents: ${known})`,
      );
    }
    return inbox;
  }
}

/** Names come from the model: quote them, and keep a runaway one short in the error it gets back. */
function describeName(name: unknown): string {
  const text = typeof name === 'string' ? name : describeError(name);
  return JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text);
}

function positiveInteger(value: number, name: string): number {
  if (!Number.isInteger(value) || value < 1) {
    throw new BerthError('invalid_config', `MessageBus ${name} must be a positive integer, got ${value}`);
  }
  return value;
}
