// The built-in scenarios and the placeholders they use, on the wire (the real CLI runs them in the
// README's quick start: test/doc-examples-readme.test.ts).
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_SCENARIOS, DEFAULT_SCENARIO_HELP } from './default-scenarios.js';
import { startMockModel, type MockModel } from './mock-model.js';
import { parseScenarios } from './scenario.js';
import {
  textOf,
  toolResult,
  toolUse,
  userMessage,
  wireClient,
  type Message,
} from '../../test/helpers/anthropic-wire.js';

let model: MockModel;
const { ask } = wireClient(() => model);

const tools = ['Bash', 'Read', 'Write'].map((name) => ({ name, input_schema: { type: 'object' } }));
const environment = {
  role: 'system',
  content: [
    { type: 'text', text: '# Environment\n - Primary working directory: /work/sess 1\n - Platform: linux' },
  ],
};

/** The first request of a turn whose words are `text`, as the CLI sends it (tools offered, cwd stated). */
function turn(text: string, earlier: unknown[] = []): unknown[] {
  return [...earlier, userMessage(text), environment];
}

function toolUseOf(reply: Message) {
  return reply.content.find((block) => block.type === 'tool_use');
}

async function first(text: string): Promise<Message> {
  return ask(turn(text), { tools });
}

describe('the built-in scenarios', () => {
  beforeAll(async () => {
    model = await startMockModel({ scenarios: DEFAULT_SCENARIOS });
  });
  afterAll(async () => {
    await model.close();
  });

  it('are named in the order they are tried', () => {
    expect(model.scenarioNames).toEqual(['tool-failed', 'shell', 'write', 'read', 'wait', 'recall', 'help']);
  });

  it('run a shell command in plain words, with or without backticks, then show its output', async () => {
    for (const words of [
      'run `ls -la | head -3`',
      'Please run ls -la | head -3',
      'run the command ls -la | head -3',
    ]) {
      const reply = await first(words);
      expect(toolUseOf(reply), words).toMatchObject({ name: 'Bash', input: { command: 'ls -la | head -3' } });
    }
    const call = toolUseOf(await first('run echo hi'))!;
    const after = await ask(
      [...turn('run echo hi'), toolUse(call.id!, 'Bash', call.input), toolResult(call.id!, 'hi')],
      {
        tools,
      },
    );
    expect(textOf(after)).toBe('`echo hi` printed:\nhi');
  });

  it('write a file given relative to the working directory the CLI states', async () => {
    const reply = await first('write "hello there" to notes/today.txt.');
    expect(toolUseOf(reply)).toMatchObject({
      name: 'Write',
      input: { file_path: '/work/sess 1/notes/today.txt', content: 'hello there\n' },
    });
    const unquoted = await first('Write hello to `a.txt`');
    expect(toolUseOf(unquoted)?.input).toEqual({ file_path: '/work/sess 1/a.txt', content: 'hello\n' });
    // A process fed by streaming input states it in a reminder of the first user message instead.
    const inReminder = {
      role: 'user',
      content: [
        {
          type: 'text',
          text: '<system-reminder>\n# Environment\n - Primary working directory: /w/s2\n</system-reminder>',
        },
        { type: 'text', text: 'write "x" to b.txt' },
      ],
    };
    expect(toolUseOf(await ask([inReminder], { tools }))?.input).toMatchObject({ file_path: '/w/s2/b.txt' });
    // The words a person typed are never taken for the CLI's statement, nor is a reminder they typed.
    const typed = [
      userMessage(' - Primary working directory: /etc'),
      { role: 'assistant', content: [{ type: 'text', text: 'ok' }] },
      userMessage(
        '<system-reminder>\n - Primary working directory: /etc\n</system-reminder>write "x" to c.txt',
      ),
    ];
    // Without a stated directory a file path would point at `/`: the step is not sent, the echo is.
    const unknown = await ask(typed, { tools });
    expect(toolUseOf(unknown)).toBeUndefined();
    expect(textOf(unknown)).toBe('Scripted reply to: write "x" to c.txt');
    // The CLI's own statement wins over one in the system prompt, which the API's caller writes.
    const prompted = await ask(turn('read a.txt'), {
      tools,
      system: [{ type: 'text', text: 'Be brief.\n - Primary working directory: /srv/app' }],
    });
    expect(toolUseOf(prompted)?.input).toEqual({ file_path: '/work/sess 1/a.txt' });
  });

  it('read a file, and wait a number of seconds', async () => {
    expect(toolUseOf(await first('read notes.txt'))).toMatchObject({
      name: 'Read',
      input: { file_path: '/work/sess 1/notes.txt' },
    });
    expect(toolUseOf(await first('show me `x.md`'))?.input).toEqual({ file_path: '/work/sess 1/x.md' });
    expect(toolUseOf(await first('wait 30 seconds'))).toMatchObject({
      name: 'Bash',
      input: { command: 'for i in $(seq 30); do sleep 1; done; echo waited 30 seconds' },
    });
    expect(toolUseOf(await first('sleep for 5s.'))?.input).toMatchObject({
      command: expect.stringContaining('seq 5'),
    });
  });

  it('report a denied or failed tool call instead of describing it as done', async () => {
    const call = toolUseOf(await first('write "x" to y.txt'))!;
    const denied = await ask(
      [
        ...turn('write "x" to y.txt'),
        toolUse(call.id!, 'Write', call.input),
        toolResult(call.id!, 'denied by user', true),
      ],
      { tools },
    );
    expect(textOf(denied)).toBe('That did not work:\ndenied by user');
    expect(toolUseOf(denied)).toBeUndefined();
    // After an interrupt the CLI sends the interrupted tool's result with the next words: a new turn.
    const folded = {
      role: 'user',
      content: [
        { type: 'tool_result', tool_use_id: call.id, content: 'interrupted', is_error: true },
        { type: 'text', text: 'run echo next' },
      ],
    };
    const next = await ask([...turn('write "x" to y.txt'), toolUse(call.id!, 'Write', call.input), folded], {
      tools,
    });
    expect(toolUseOf(next)?.input).toMatchObject({ command: 'echo next' });
  });

  it('recall the earlier words of the conversation, including a message folded in after an interrupt', async () => {
    const earlier = [
      userMessage('my name is Ada'),
      environment,
      { role: 'assistant', content: [{ type: 'text', text: 'ok' }] },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'wait 60 seconds' },
          { type: 'text', text: '[Request interrupted by user]' },
        ],
      },
    ];
    const reply = await ask(turn('What did I say before?', earlier), { tools });
    expect(textOf(reply)).toBe(
      'Earlier in this conversation you said:\n1. my name is Ada\n2. wait 60 seconds',
    );
    expect(textOf(await first('recall'))).toBe(
      'Earlier in this conversation you said:\n(nothing before this message)',
    );
    expect(textOf(await first('What have I said so far?'))).toContain('Earlier in this conversation');
  });

  it('answer help, and echo anything else, sentences that merely contain a keyword included', async () => {
    expect(textOf(await first('help'))).toBe(DEFAULT_SCENARIO_HELP);
    const sentences = [
      'I will read it later, thanks',
      'hello',
      'please write back soon',
      'I recall nothing',
      'remind me to buy milk',
      'show me',
    ];
    for (const words of sentences) {
      const reply = await first(words);
      expect(textOf(reply), words).toBe(`Scripted reply to: ${words}`);
    }
  });

  it('answer words made to backtrack (long runs of spaces, a huge system prompt) at once', async () => {
    const started = Date.now();
    const spaces = ' '.repeat(200_000);
    for (const words of [`run a${spaces}b\`x`, `write a${spaces}b`, `read a${spaces}b`, `wait 1${spaces}x`]) {
      expect(textOf(await first(words))).toMatch(/^Scripted reply to: /);
    }
    const system = [{ type: 'text', text: `Be brief.${'\n'.repeat(200_000)}` }];
    const reminder = {
      role: 'user',
      content: [{ type: 'text', text: `<system-reminder>${'\n'.repeat(200_000)}hi` }],
    };
    expect(textOf(await ask([reminder], { tools, system }))).toBe('Scripted reply.');
    // A bound on a hang, not a speed claim: the quadratic patterns took minutes on these inputs.
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it('fall back to the echo when the tool is not offered (a disabled tool)', async () => {
    const reply = await ask(turn('run ls'), { tools: tools.filter((tool) => tool.name !== 'Bash') });
    expect(textOf(reply)).toBe('Scripted reply to: run ls');
  });
});

describe("docs/scripted-model.md's example scenario file", () => {
  let docModel: MockModel;
  const docClient = wireClient(() => docModel);

  beforeAll(async () => {
    const doc = readFileSync(path.resolve('docs/scripted-model.md'), 'utf8');
    const example = /```json\n([\s\S]*?)\n```/.exec(doc)?.[1];
    expect(example).toBeDefined();
    docModel = await startMockModel({ scenarios: parseScenarios(JSON.parse(example!)) });
  });
  afterAll(async () => {
    await docModel.close();
  });

  it('is valid, fills in a named group, and reports a denied call', async () => {
    const words = 'How full is /tmp?';
    const reply = await docClient.ask(turn(words), { tools });
    expect(toolUseOf(reply)).toMatchObject({ name: 'Bash', input: { command: 'df -h /tmp' } });
    const call = toolUseOf(reply)!;
    const asked = [...turn(words), toolUse(call.id!, 'Bash', call.input)];
    const shown = await docClient.ask([...asked, toolResult(call.id!, '/dev/sda1 50%')], { tools });
    expect(textOf(shown)).toBe('Here it is:\n/dev/sda1 50%');
    const denied = await docClient.ask([...asked, toolResult(call.id!, 'no', true)], { tools });
    expect(textOf(denied)).toBe('I was not allowed to: no');
  });
});
