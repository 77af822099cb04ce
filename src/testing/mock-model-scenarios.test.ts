// The scripted replies of the mock model: how a request picks a scenario and its step.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import type { Scenario } from './scenario.js';
import { startMockModel, type MockModel } from './mock-model.js';
import {
  assemble,
  parseSse,
  textOf,
  toolResult,
  toolUse,
  userMessage,
  wireClient,
} from '../../test/helpers/anthropic-wire.js';

let model: MockModel;
const { post, ask } = wireClient(() => model);

describe('mock model', () => {
  beforeEach(async () => {
    model = await startMockModel();
  });

  afterEach(async () => {
    await model.close();
  });

  describe('scenarios', () => {
    const threeSteps: Scenario = {
      name: 'three',
      match: { userText: 'deploy' },
      steps: [
        { toolUse: { name: 'Bash', input: { command: 'step0' }, id: 'toolu_a' } },
        { toolUse: { name: 'Bash', input: { command: 'step1' }, id: 'toolu_b' } },
        { text: 'deployed {{userText}}', stopReason: 'stop_sequence' },
      ],
    };

    it('derives the step from the request: assistant replies since the user text', async () => {
      model.setScenarios([threeSteps]);
      const turn = [userMessage('please deploy now'), { role: 'system', content: 'env' }];
      const step0 = await ask(turn);
      expect(step0.content[0]).toMatchObject({ id: 'toolu_a', input: { command: 'step0' } });

      const afterOne = [...turn, toolUse('toolu_a'), toolResult('toolu_a', 'ok')];
      expect((await ask(afterOne)).content[0]!.input).toEqual({ command: 'step1' });
      // A retry of the same request gets the same step.
      expect((await ask(afterOne)).content[0]!.input).toEqual({ command: 'step1' });

      const afterTwo = [...afterOne, toolUse('toolu_b'), toolResult('toolu_b', 'ok')];
      const step2 = await ask(afterTwo);
      expect(textOf(step2)).toBe('deployed please deploy now');
      expect(step2.stop_reason).toBe('stop_sequence');

      const pastEnd = [
        ...afterTwo,
        { role: 'assistant', content: [{ type: 'text', text: 'x' }] },
        toolResult('z', 'late'),
      ];
      expect(textOf(await ask(pastEnd))).toBe('Scripted reply to: please deploy now');

      expect(model.requests.map((r) => [r.matchedScenario, r.stepIndex])).toEqual([
        ['three', 0],
        ['three', 1],
        ['three', 1],
        ['three', 2],
        [null, 3],
      ]);
    });

    it('starts over at step 0 when a new user message arrives', async () => {
      model.setScenarios([threeSteps]);
      const earlier = [
        userMessage('deploy it'),
        toolUse('toolu_a'),
        toolResult('toolu_a', 'ok'),
        { role: 'assistant', content: [{ type: 'text', text: 'done' }] },
      ];
      const message = await ask([...earlier, userMessage('deploy again')]);
      expect(message.content[0]!.input).toEqual({ command: 'step0' });
    });

    it('matches user text by regular expression', async () => {
      model.setScenarios([
        { match: { userText: { regex: '^ORDER\\s+\\d+$', flags: 'i' } }, steps: [{ text: 'matched' }] },
      ]);
      expect(textOf(await ask([userMessage('order 42')]))).toBe('matched');
      expect(textOf(await ask([userMessage('an order 42')]))).toBe('Scripted reply to: an order 42');
    });

    it('starts a sequence from a matching tool result', async () => {
      model.setScenarios([
        {
          name: 'on-error',
          match: { toolResult: { contains: 'command not found', isError: true } },
          steps: [{ toolUse: { name: 'Bash', input: { command: 'retry' } } }, { text: 'recovered' }],
        },
      ]);
      const turn = [
        userMessage('build'),
        toolUse('t1'),
        toolResult('t1', 'bash: make: command not found', true),
      ];
      expect((await ask(turn)).content[0]!.input).toEqual({ command: 'retry' });
      expect(textOf(await ask([...turn, toolUse('t2'), toolResult('t2', 'ok')]))).toBe('recovered');
      // The same text without is_error does not match.
      const notError = [userMessage('build'), toolUse('t1'), toolResult('t1', 'command not found', false)];
      expect(textOf(await ask(notError))).toBe('Scripted reply to: build');
      expect(model.requests.map((r) => r.matchedScenario)).toEqual(['on-error', 'on-error', null]);
      expect(model.requests[0]!.toolResults).toEqual([
        { tool_use_id: 't1', text: 'bash: make: command not found', is_error: true },
      ]);
    });

    it('lets the first matching scenario win', async () => {
      model.setScenarios([
        { name: 'specific', match: { userText: 'alpha' }, steps: [{ text: 'specific' }] },
        { name: 'catch-all', match: {}, steps: [{ text: 'catch-all' }] },
      ]);
      model.addScenario({ name: 'never', match: {}, steps: [{ text: 'never' }] });
      expect(textOf(await ask([userMessage('alpha beta')]))).toBe('specific');
      expect(textOf(await ask([userMessage('gamma')]))).toBe('catch-all');
    });

    it('matches at most `times` turns, counting a retried turn once', async () => {
      model.setScenarios([
        {
          name: 'once',
          match: { userText: 'hi' },
          times: 1,
          steps: [{ toolUse: { name: 'Bash', input: {} } }, { text: 'second step' }],
        },
      ]);
      const session = { 'x-claude-code-session-id': 's1' };
      expect((await ask([userMessage('hi one')], {}, session)).content[0]!.type).toBe('tool_use');
      expect((await ask([userMessage('hi one')], {}, session)).content[0]!.type).toBe('tool_use');
      const stepOne = [userMessage('hi one'), toolUse('t'), toolResult('t', 'ok')];
      expect(textOf(await ask(stepOne, {}, session))).toBe('second step');
      expect(textOf(await ask([userMessage('hi two')], {}, session))).toBe('Scripted reply to: hi two');
      // Another session's turn is another turn too.
      expect(textOf(await ask([userMessage('hi one')], {}, { 'x-claude-code-session-id': 's2' }))).toBe(
        'Scripted reply to: hi one',
      );
    });

    it('answers side requests only when the scenario asks for them', async () => {
      model.setScenarios([{ name: 'main-only', match: {}, steps: [{ text: 'scripted' }] }]);
      const side = { model: 'm', stream: true, messages: [userMessage('title please')] };
      const sideRes = await post(side);
      expect(textOf(assemble(parseSse(await sideRes.text())))).toBe('Scripted reply to: title please');
      expect(model.requests.at(-1)).toMatchObject({ isMain: false, matchedScenario: null });

      model.setScenarios([{ name: 'both', match: {}, steps: [{ text: 'scripted' }], sideRequests: true }]);
      const res = await post(side);
      expect(textOf(assemble(parseSse(await res.text())))).toBe('scripted');
    });

    it('never sends a tool_use for a tool the request does not offer', async () => {
      model.setScenarios([{ match: {}, steps: [{ toolUse: { name: 'Write', input: { file_path: 'x' } } }] }]);
      const message = await ask([userMessage('write it')]);
      expect(message.content).toEqual([{ type: 'text', text: 'Scripted reply to: write it' }]);
      expect(message.stop_reason).toBe('end_turn');
      expect(model.requests.at(-1)!.matchedScenario).toBeNull();
    });

    it('rejects invalid scenarios with invalid_config', () => {
      expect(() =>
        model.setScenarios([{ match: {}, steps: [{ toolUse: { name: '', input: {} } }] }]),
      ).toThrow(/steps\[0\]\.toolUse\.name/);
      try {
        model.addScenario({ match: { userText: { regex: '[' } }, steps: [] });
        expect.unreachable();
      } catch (err) {
        expect(isBerthError(err, 'invalid_config')).toBe(true);
      }
    });
  });
});
