import { describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { parseFault, parseScenarios, type Scenario } from './scenario.js';

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (err) {
    expect(isBerthError(err, 'invalid_config')).toBe(true);
    return err as Error;
  }
  throw new Error('expected a throw');
}

describe('parseScenarios', () => {
  const valid: Scenario[] = [
    {
      name: 'bash',
      match: { userText: { regex: '^run', flags: 'i' } },
      steps: [
        { thinking: 'plan', toolUse: { name: 'Bash', input: { command: 'ls' } } },
        { text: 'done: {{userText}}', fault: { chunkDelayMs: 5, stallMs: 1e12, times: 1 } },
      ],
      times: 2,
    },
    {
      match: { toolResult: { contains: 'ERR', isError: true } },
      steps: [{ content: [{ type: 'text', text: 'x' }] }],
    },
    { match: {}, steps: [], sideRequests: true },
  ];

  it('accepts valid scenarios, as an array or wrapped in { scenarios }', () => {
    expect(parseScenarios(valid)).toEqual(valid);
    expect(parseScenarios({ scenarios: valid })).toEqual(valid);
    expect(parseScenarios(JSON.parse(JSON.stringify(valid)))).toEqual(valid);
  });

  it('names the bad field', () => {
    const bad = [{ match: {}, steps: [{ text: 'ok' }, { toolUse: { name: 5, input: {} } }] }];
    expect(errorOf(() => parseScenarios(bad)).message).toContain('scenarios[0].steps[1].toolUse.name');
  });

  it('names a field inside an array of tool uses', () => {
    const bad = [{ match: {}, steps: [{ toolUse: [{ name: 'Bash', input: 'ls' }] }] }];
    expect(errorOf(() => parseScenarios(bad)).message).toContain('scenarios[0].steps[0].toolUse[0].input');
  });

  it('rejects unknown keys, so typos do not pass silently', () => {
    const bad = [{ match: { usertext: 'x' }, steps: [] }];
    expect(errorOf(() => parseScenarios(bad)).message).toMatch(/scenarios\[0\]\.match: .*usertext/);
  });

  it('rejects an invalid regular expression', () => {
    const bad = [{ match: { userText: { regex: '(' } }, steps: [] }];
    expect(errorOf(() => parseScenarios(bad)).message).toContain('scenarios[0].match.userText.regex');
  });

  it('rejects a missing steps array and a bad fault status', () => {
    expect(errorOf(() => parseScenarios([{ match: {} }])).message).toContain('scenarios[0].steps');
    const bad = [{ match: {}, steps: [{ fault: { status: 418 } }] }];
    expect(errorOf(() => parseScenarios(bad)).message).toContain('scenarios[0].steps[0].fault.status');
  });

  it('rejects something that is not a scenario list', () => {
    expect(errorOf(() => parseScenarios('nope')).message).toContain('scenarios');
  });
});

describe('parseFault', () => {
  it('accepts Infinity as a stall', () => {
    expect(parseFault({ stallMs: Infinity })).toEqual({ stallMs: Infinity });
  });

  it('names the bad field', () => {
    expect(errorOf(() => parseFault({ times: 0 })).message).toContain('fault.times');
    expect(errorOf(() => parseFault({ scope: 'both' })).message).toContain('fault.scope');
  });
});
