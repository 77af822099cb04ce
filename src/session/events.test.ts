import { describe, expect, it } from 'vitest';
import { ZERO_USAGE, addUsage, type Usage } from './events.js';

describe('addUsage', () => {
  it('sums tokens, and costs to a billionth of a dollar without floating-point noise', () => {
    const turn: Usage = { ...ZERO_USAGE, input_tokens: 2300, output_tokens: 3, cost_usd: 0.00926 };
    let total = ZERO_USAGE;
    for (let i = 0; i < 5; i++) total = addUsage(total, turn);
    // Plain addition gives 0.046299999999999994.
    expect(total).toEqual({ ...ZERO_USAGE, input_tokens: 11_500, output_tokens: 15, cost_usd: 0.0463 });
    expect(JSON.stringify(total.cost_usd)).toBe('0.0463');
  });
});
