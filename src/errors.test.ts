import { describe, expect, it } from 'vitest';
import { BerthError, formatErrorForLog } from './errors.js';

function thrownHere(): Error {
  const root = new Error('connect ECONNREFUSED 127.0.0.1:5432');
  const middle = new Error('the registry could not be read', { cause: root });
  return new BerthError('internal', 'Internal error', { cause: middle });
}

describe('formatErrorForLog', () => {
  it('keeps the stack and every cause of an internal error', () => {
    const text = formatErrorForLog(thrownHere());
    const lines = text.split('\n');
    expect(lines[0]).toBe('BerthError [internal]: Internal error');
    expect(text).toContain('caused by: Error: the registry could not be read');
    expect(text).toContain('caused by: Error: connect ECONNREFUSED 127.0.0.1:5432');
    // Each error's own frames follow it: the function that made them is named once per error.
    expect(text.match(/at thrownHere \(/g)).toHaveLength(3);
    expect(lines.filter((l) => /^\s+at /.test(l)).length).toBeGreaterThanOrEqual(3);
  });

  it('shows an error of a backend with its stack, and a caller mistake as its code and message', () => {
    const backend = new BerthError('store_unavailable', 'the store failed', { cause: new Error('EPIPE') });
    expect(formatErrorForLog(backend)).toMatch(
      /^BerthError \[store_unavailable\]: the store failed\n\s+at [^]*\ncaused by: Error: EPIPE\n\s+at /,
    );
    expect(formatErrorForLog(new BerthError('invalid_config', '--port: bad'))).toBe(
      'invalid_config: --port: bad',
    );
  });

  it('lists the members of an AggregateError', () => {
    const text = formatErrorForLog(new AggregateError([new Error('one'), 'two'], 'both failed'));
    expect(text).toMatch(/^AggregateError: both failed\n/);
    expect(text).toContain('  [0] Error: one\n');
    expect(text).toContain('  [1] two');
  });

  it('ends a cause chain that loops, and describes values that are not errors', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    a.cause = b;
    const text = formatErrorForLog(a);
    expect(text.match(/caused by/g)).toHaveLength(2);
    expect(text).toContain('caused by: (the same error again)');
    expect(formatErrorForLog('plain text')).toBe('plain text');
    expect(formatErrorForLog({ code: 7 })).toBe('{ code: 7 }');
  });
});
