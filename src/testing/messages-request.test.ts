import { describe, expect, it } from 'vitest';
import { analyzeRequest, countAssistantTurns, userTextOf } from './messages-request.js';

const reminder = { type: 'text', text: '<system-reminder>\nAttribution rules\n</system-reminder>\n' };
const bash = { name: 'Bash', description: 'run', input_schema: { type: 'object' } };

describe('userTextOf', () => {
  it('reads string content', () => {
    expect(userTextOf({ role: 'user', content: 'hi there' })).toBe('hi there');
  });

  it('skips system reminders, in their own block or inline', () => {
    expect(userTextOf({ role: 'user', content: [reminder, { type: 'text', text: 'do it' }] })).toBe('do it');
    expect(userTextOf({ role: 'user', content: '<system-reminder>x</system-reminder>\nplease' })).toBe(
      'please',
    );
  });

  it('is null for tool results and reminders only', () => {
    const content = [{ type: 'tool_result', tool_use_id: 't', content: 'ok' }, reminder];
    expect(userTextOf({ role: 'user', content })).toBeNull();
  });
});

describe('countAssistantTurns', () => {
  it('counts runs of assistant messages and ignores system messages', () => {
    const messages = [
      { role: 'user', content: 'go' },
      { role: 'system', content: 'env' },
      { role: 'assistant', content: [{ type: 'thinking', thinking: '' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't1', content: 'ok' }] },
      { role: 'assistant', content: [{ type: 'tool_use', id: 't2', name: 'Bash', input: {} }] },
      { role: 'user', content: [{ type: 'tool_result', tool_use_id: 't2', content: 'ok' }] },
    ];
    expect(countAssistantTurns(messages, 0)).toBe(2);
    expect(countAssistantTurns(messages, 4)).toBe(1);
    expect(countAssistantTurns(messages, 6)).toBe(0);
  });
});

describe('analyzeRequest', () => {
  it('finds the user text before a trailing system message (step 0)', () => {
    const req = analyzeRequest({
      model: 'claude-x',
      stream: true,
      tools: [bash],
      messages: [
        { role: 'user', content: [reminder, { type: 'text', text: 'first words' }] },
        { role: 'system', content: [{ type: 'text', text: '# Environment' }] },
      ],
    });
    expect(req).toMatchObject({
      userText: 'first words',
      userTextIndex: 0,
      stepIndex: 0,
      isMain: true,
      stream: true,
    });
    expect(req.model).toBe('claude-x');
    expect([...req.toolNames]).toEqual(['Bash']);
    expect(req.toolResults).toEqual([]);
  });

  it('derives the step of a tool-result request of the second turn', () => {
    const req = analyzeRequest({
      tools: [bash],
      messages: [
        { role: 'user', content: 'turn one' },
        { role: 'system', content: 'env' },
        { role: 'assistant', content: [{ type: 'text', text: 'done' }] },
        { role: 'user', content: [{ type: 'text', text: 'turn two', cache_control: { type: 'ephemeral' } }] },
        { role: 'assistant', content: [{ type: 'tool_use', id: 't1', name: 'Bash', input: {} }] },
        {
          role: 'user',
          content: [
            {
              type: 'tool_result',
              tool_use_id: 't1',
              content: [{ type: 'text', text: 'out' }],
              is_error: true,
            },
            reminder,
          ],
        },
      ],
    });
    expect(req).toMatchObject({ userText: 'turn two', userTextIndex: 3, stepIndex: 1, stream: false });
    expect(req.toolResults).toEqual([{ tool_use_id: 't1', text: 'out', is_error: true }]);
  });

  it('treats a request without tools as a side request and reads its output schema', () => {
    const schema = { type: 'object', properties: { title: { type: 'string' } } };
    const req = analyzeRequest({
      tools: [],
      output_config: { format: { type: 'json_schema', schema } },
      messages: [{ role: 'user', content: '<session>\nhi\n</session>' }],
    });
    expect(req.isMain).toBe(false);
    expect(req.outputSchema).toEqual(schema);
    expect(req.model).toBe('mock-model');
  });

  it('copes with odd messages', () => {
    const req = analyzeRequest({
      messages: [null, 5, { role: 'user' }, { role: 'user', content: [7, null] }],
    });
    expect(req).toMatchObject({ userText: null, userTextIndex: -1, stepIndex: 0, toolResults: [] });
  });
});
