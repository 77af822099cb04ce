import { describe, expect, it } from 'vitest';
import type { NewEvent, StoredEvent } from './events.js';
import type { SessionEventStream } from './event-stream.js';
import { ToolConfirmations } from './tool-confirmations.js';

/** Confirmations over an event stream that only numbers what it is given. */
function confirmations(askTools: string[] = []) {
  const emitted: StoredEvent[] = [];
  const waits: string[][] = [];
  const events = {
    emit: (...list: NewEvent[]) => {
      const stored = list.map((e, i) => ({
        ...e,
        id: `sevt_${emitted.length + i + 1}`,
        seq: emitted.length + i + 1,
        created_at: '',
      }));
      emitted.push(...stored);
      return stored;
    },
  } as unknown as SessionEventStream;
  const c = new ToolConfirmations({
    sessionId: 's',
    events,
    askTools: new Set(askTools),
    timeoutMs: 60_000,
    isClosed: () => false,
    onWaiting: (ids) => waits.push(ids),
    onAllAnswered: () => undefined,
  });
  return { c, emitted, waits };
}

const signal = () => new AbortController().signal;
const toolUse = {
  type: 'agent.tool_use' as const,
  tool_use_id: 'toolu_1',
  name: 'Bash',
  input: { command: 'echo hi' },
};

describe('ToolConfirmations', () => {
  it('marks an ask_tools tool use as asking when it is announced, before the CLI asks', () => {
    const { c, emitted } = confirmations(['Bash']);
    c.emitEvents([toolUse]);
    expect(emitted[0]).toMatchObject({ type: 'agent.tool_use', requires_confirmation: true });
    const plain = confirmations([]);
    plain.c.emitEvents([toolUse]);
    expect(plain.emitted[0]).not.toHaveProperty('requires_confirmation');
  });

  it('takes an answer that comes before the CLI asks, and applies it when it does', async () => {
    const { c, emitted, waits } = confirmations(['Bash']);
    c.emitEvents([toolUse]);
    const eventId = emitted[0]!.id;
    c.check([{ type: 'user.tool_confirmation', tool_use_id: eventId }]);
    c.answer(eventId, 'deny', 'not now');
    // Answered once: a second answer is refused.
    expect(() => c.check([{ type: 'user.tool_confirmation', tool_use_id: eventId }])).toThrow(/not waiting/);
    const result = await c.canUseTool('Bash', toolUse.input, {
      signal: signal(),
      toolUseID: 'toolu_1',
    } as never);
    expect(result).toMatchObject({ behavior: 'deny', message: 'not now' });
    // Nothing waited: no requires_action pause was announced.
    expect(waits).toEqual([]);
  });

  it('refuses the CLI tool id and a tool use that does not ask', () => {
    const { c, emitted } = confirmations([]);
    c.emitEvents([toolUse]);
    expect(() => c.check([{ type: 'user.tool_confirmation', tool_use_id: 'toolu_1' }])).toThrow(
      /not waiting/,
    );
    expect(() => c.check([{ type: 'user.tool_confirmation', tool_use_id: emitted[0]!.id }])).toThrow(
      /not waiting/,
    );
  });
});
