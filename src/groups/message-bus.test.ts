import { describe, expect, it, vi } from 'vitest';
import { BerthError } from '../errors.js';
import {
  BROADCAST,
  DEFAULT_MAX_INBOX_MESSAGES,
  DEFAULT_MAX_TEXT_BYTES,
  MessageBus,
  validateAgentName,
  type BusMessage,
} from './message-bus.js';

/** The BerthError `fn` throws (fails the test when it throws nothing or something else). */
function thrown(fn: () => unknown): BerthError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(BerthError);
    return err as BerthError;
  }
  throw new Error('expected a BerthError, nothing was thrown');
}

describe('agent names', () => {
  it.each(['a', 'A1', 'agent_b', 'x-y', '0', 'a'.repeat(64)])('accepts %j', (name) => {
    expect(validateAgentName(name)).toBe(name);
    expect(new MessageBus({ agents: [name] }).agents).toEqual([name]);
  });

  it.each(['', '-a', '_a', 'a b', 'a/b', '../x', 'é', '*', 'a'.repeat(65)])('rejects %j', (name) => {
    expect(thrown(() => new MessageBus({ agents: [name] })).code).toBe('invalid_request');
  });

  it('rejects a non-string name', () => {
    expect(thrown(() => validateAgentName(42)).code).toBe('invalid_request');
  });

  it('refuses an agent twice', () => {
    const bus = new MessageBus({ agents: ['a'] });
    expect(thrown(() => bus.addAgent('a')).code).toBe('session_exists');
    bus.addAgent('b');
    expect(bus.agents).toEqual(['a', 'b']);
    expect(bus.hasAgent('b')).toBe(true);
    expect(bus.hasAgent('c')).toBe(false);
  });
});

describe('send and read', () => {
  it('delivers to the recipient only, oldest first, and a read removes what it returns', () => {
    let t = Date.parse('2030-01-02T03:04:05.000Z');
    const bus = new MessageBus({ agents: ['a', 'b', 'c'], now: () => (t += 1000) });
    const first = bus.send('a', 'b', 'one');
    bus.send('c', 'b', 'two');
    bus.send('b', 'a', 'back');

    expect(first).toMatchObject({ from: 'a', to: 'b', recipients: ['b'], text: 'one' });
    expect(first.id).toMatch(/^msg_[A-Za-z0-9_-]{16}$/);
    expect(bus.unreadCount('b')).toBe(2);
    expect(bus.unreadCount('c')).toBe(0);

    const read = bus.read('b');
    expect(read.remaining).toBe(0);
    expect(read.messages).toEqual([
      { id: first.id, from: 'a', text: 'one', sent_at: '2030-01-02T03:04:06.000Z' },
      { id: expect.any(String), from: 'c', text: 'two', sent_at: '2030-01-02T03:04:07.000Z' },
    ]);
    expect(bus.read('b')).toEqual({ messages: [], remaining: 0 });
    expect(bus.read('a').messages.map((m) => m.text)).toEqual(['back']);
  });

  it('gives every message its own id', () => {
    const bus = new MessageBus({ agents: ['a', 'b'] });
    const ids = new Set(Array.from({ length: 50 }, () => bus.send('a', 'b', 'x').id));
    expect(ids.size).toBe(50);
  });

  it('lets an agent write to itself', () => {
    const bus = new MessageBus({ agents: ['a'] });
    bus.send('a', 'a', 'note to self');
    expect(bus.read('a').messages.map((m) => m.text)).toEqual(['note to self']);
  });

  it('reports an unknown recipient, sender or reader as not_found, naming the agents', () => {
    const bus = new MessageBus({ agents: ['a', 'b'] });
    const err = thrown(() => bus.send('a', 'zed', 'hi'));
    expect(err.code).toBe('not_found');
    expect(err.message).toBe('Recipient "zed" is not an agent of this group (agents: a, b)');
    expect(thrown(() => bus.send('zed', 'a', 'hi')).code).toBe('not_found');
    expect(thrown(() => bus.read('zed')).code).toBe('not_found');
    expect(thrown(() => bus.unreadCount('zed')).code).toBe('not_found');
    expect(bus.unreadCount('a') + bus.unreadCount('b')).toBe(0);
  });

  it('keeps a model-supplied name short in the error', () => {
    const bus = new MessageBus({ agents: ['a'] });
    const err = thrown(() => bus.send('a', 'n'.repeat(10_000), 'hi'));
    expect(err.message.length).toBeLessThan(200);
  });

  it('refuses an empty text', () => {
    const bus = new MessageBus({ agents: ['a', 'b'] });
    expect(thrown(() => bus.send('a', 'b', '')).code).toBe('invalid_request');
    expect(bus.unreadCount('b')).toBe(0);
  });

  it('limits the text in UTF-8 bytes, not characters', () => {
    const bus = new MessageBus({ agents: ['a', 'b'], maxTextBytes: 10 });
    bus.send('a', 'b', 'x'.repeat(10));
    const err = thrown(() => bus.send('a', 'b', 'é'.repeat(6))); // 12 bytes, 6 characters
    expect(err.code).toBe('body_too_large');
    expect(err.message).toContain('12 bytes; at most 10 bytes');
    expect(bus.unreadCount('b')).toBe(1);
  });

  it('has a 32 KiB text limit and a 1000-message inbox by default', () => {
    expect(DEFAULT_MAX_TEXT_BYTES).toBe(32 * 1024);
    expect(DEFAULT_MAX_INBOX_MESSAGES).toBe(1000);
    const bus = new MessageBus({ agents: ['a', 'b'] });
    bus.send('a', 'b', 'x'.repeat(DEFAULT_MAX_TEXT_BYTES));
    expect(thrown(() => bus.send('a', 'b', 'x'.repeat(DEFAULT_MAX_TEXT_BYTES + 1))).code).toBe(
      'body_too_large',
    );
    for (let i = 1; i < DEFAULT_MAX_INBOX_MESSAGES; i++) bus.send('a', 'b', `m${i}`);
    expect(thrown(() => bus.send('a', 'b', 'one too many')).code).toBe('queue_full');
  });

  it('refuses a send to a full inbox until the recipient reads', () => {
    const bus = new MessageBus({ agents: ['a', 'b'], maxInboxMessages: 2 });
    bus.send('a', 'b', '1');
    bus.send('a', 'b', '2');
    const err = thrown(() => bus.send('a', 'b', '3'));
    expect(err.code).toBe('queue_full');
    expect(err.message).toContain('The inbox of b is full (2 unread messages)');
    expect(bus.read('b').messages.map((m) => m.text)).toEqual(['1', '2']);
    bus.send('a', 'b', '3');
    expect(bus.unreadCount('b')).toBe(1);
  });

  it('rejects limits that are not positive integers', () => {
    expect(thrown(() => new MessageBus({ maxTextBytes: 0 })).code).toBe('invalid_config');
    expect(thrown(() => new MessageBus({ maxInboxMessages: 1.5 })).code).toBe('invalid_config');
  });
});

describe('partial reads', () => {
  /** The JSON length of an inbox message with this text (ids and timestamps have fixed lengths). */
  const size = (text: string): number =>
    JSON.stringify({ id: 'msg_0123456789abcdef', from: 'a', text, sent_at: new Date().toISOString() }).length;

  it('stops at limit and reports what remains', () => {
    const bus = new MessageBus({ agents: ['a', 'b'] });
    for (const text of ['1', '2', '3']) bus.send('a', 'b', text);
    const first = bus.read('b', { limit: 2 });
    expect(first.messages.map((m) => m.text)).toEqual(['1', '2']);
    expect(first.remaining).toBe(1);
    expect(bus.read('b', { limit: 2 })).toMatchObject({ messages: [{ text: '3' }], remaining: 0 });
  });

  it('stops before the message that would exceed the JSON budget, but always returns one', () => {
    const bus = new MessageBus({ agents: ['a', 'b'] });
    bus.send('a', 'b', 'x'.repeat(100));
    bus.send('a', 'b', 'y'.repeat(10));
    bus.send('a', 'b', 'z'.repeat(10));

    // The first message is larger than the budget on its own: it comes alone.
    const first = bus.read('b', { maxJsonChars: 50 });
    expect(first.messages.map((m) => m.text[0])).toEqual(['x']);
    expect(first.remaining).toBe(2);

    const budget = size('y'.repeat(10)) + size('z'.repeat(10));
    expect(bus.read('b', { maxJsonChars: budget - 1 }).messages.map((m) => m.text[0])).toEqual(['y']);
    bus.send('a', 'b', 'w'.repeat(10));
    expect(bus.read('b', { maxJsonChars: budget }).messages.map((m) => m.text[0])).toEqual(['z', 'w']);
  });

  it('counts the budget in JSON characters, escapes included', () => {
    const bus = new MessageBus({ agents: ['a', 'b'] });
    bus.send('a', 'b', 'first');
    bus.send('a', 'b', '\n'.repeat(100)); // 100 characters, 200 once escaped
    // Enough for the two messages if newlines counted one character each.
    const result = bus.read('b', { maxJsonChars: size('first') + size('x'.repeat(100)) });
    expect(result.messages.map((m) => m.text)).toEqual(['first']);
    expect(result.remaining).toBe(1);
  });
});

describe('broadcast', () => {
  it('delivers one message to every other agent', () => {
    const bus = new MessageBus({ agents: ['a', 'b', 'c'] });
    const message = bus.send('a', BROADCAST, 'all hands');
    expect(message).toMatchObject({ to: '*', recipients: ['b', 'c'] });
    for (const agent of ['b', 'c']) {
      expect(bus.read(agent).messages).toEqual([
        { id: message.id, from: 'a', text: 'all hands', sent_at: message.sent_at },
      ]);
    }
    expect(bus.unreadCount('a')).toBe(0);
  });

  it('delivers nothing when one inbox is full', () => {
    const bus = new MessageBus({ agents: ['a', 'b', 'c'], maxInboxMessages: 1 });
    bus.send('a', 'c', 'fills c');
    expect(thrown(() => bus.send('a', BROADCAST, 'all hands')).code).toBe('queue_full');
    expect(bus.unreadCount('b')).toBe(0);
    expect(bus.unreadCount('c')).toBe(1);
  });

  it('refuses a broadcast nobody would receive', () => {
    const bus = new MessageBus({ agents: ['solo'] });
    expect(thrown(() => bus.send('solo', BROADCAST, 'anyone?')).code).toBe('invalid_request');
  });
});

describe('listeners', () => {
  it('sees every delivered message once, and nothing that failed', () => {
    const bus = new MessageBus({ agents: ['a', 'b', 'c'], maxInboxMessages: 1 });
    const seen: BusMessage[] = [];
    const off = bus.onMessage((m) => seen.push(m));
    const sent = bus.send('a', 'b', 'hello');
    expect(() => bus.send('c', 'b', 'full')).toThrow(BerthError);
    bus.send('b', BROADCAST, 'to all');
    expect(seen).toEqual([sent, expect.objectContaining({ to: '*', recipients: ['a', 'c'] })]);
    off();
    bus.read('b');
    bus.send('a', 'b', 'unseen');
    expect(seen).toHaveLength(2);
  });

  it('reports a failing listener without failing the send or the other listeners', () => {
    const onListenerError = vi.fn();
    const bus = new MessageBus({ agents: ['a', 'b'], onListenerError });
    const boom = new Error('listener broke');
    bus.onMessage(() => {
      throw boom;
    });
    const other = vi.fn();
    bus.onMessage(other);
    expect(() => bus.send('a', 'b', 'hi')).not.toThrow();
    expect(onListenerError).toHaveBeenCalledWith(boom);
    expect(other).toHaveBeenCalledTimes(1);
    expect(bus.unreadCount('b')).toBe(1);
  });
});

describe('close', () => {
  it('is idempotent, drops inboxes and listeners, and refuses later use', () => {
    const bus = new MessageBus({ agents: ['a', 'b'] });
    const listener = vi.fn();
    bus.onMessage(listener);
    bus.send('a', 'b', 'before');
    bus.close();
    bus.close();
    expect(bus.isClosed).toBe(true);
    expect(bus.agents).toEqual([]);
    for (const use of [
      () => bus.send('a', 'b', 'after'),
      () => bus.read('b'),
      () => bus.unreadCount('b'),
      () => bus.addAgent('c'),
    ]) {
      expect(thrown(use).code).toBe('session_terminated');
    }
    expect(listener).toHaveBeenCalledTimes(1);
  });
});
