import { describe, expect, it } from 'vitest';
import { addUsd, roundUsd } from './usd.js';

describe('roundUsd', () => {
  it('drops floating-point noise and keeps a billionth of a dollar', () => {
    expect(roundUsd(0.04681199999999999)).toBe(0.046812);
    expect(roundUsd(0.1 + 0.2)).toBe(0.3);
    expect(roundUsd(1.5e-9)).toBe(2e-9);
    expect(roundUsd(1.4e-9)).toBe(1e-9);
    expect(roundUsd(123.456789012345)).toBe(123.456789012);
  });

  it('keeps zero and whole amounts as they are, and never returns negative zero', () => {
    expect(roundUsd(0)).toBe(0);
    expect(Object.is(roundUsd(-1e-12), 0)).toBe(true);
    expect(roundUsd(50)).toBe(50);
  });
});

describe('addUsd', () => {
  it('sums many small costs without the error building up', () => {
    let plain = 0;
    let rounded = 0;
    // A token of output at USD 15 per million, 100,000 times: exactly 1.5.
    for (let i = 0; i < 100_000; i++) {
      plain += 15 / 1e6;
      rounded = addUsd(rounded, 15 / 1e6);
    }
    expect(plain).not.toBe(1.5);
    expect(rounded).toBe(1.5);
  });

  it('prints as the decimal it means', () => {
    expect(String(addUsd(0.046812, 0.046812))).toBe('0.093624');
    expect(JSON.stringify({ cost_usd: addUsd(0.1, 0.2) })).toBe('{"cost_usd":0.3}');
  });
});
