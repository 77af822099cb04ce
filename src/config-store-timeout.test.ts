/** `--store-timeout`: the deadline of every store call, compiled to milliseconds like the other durations. */
import { describe, expect, it } from 'vitest';
import { parseServeConfig } from './config.js';
import { isBerthError } from './errors.js';
import { DEFAULT_STORE_TIMEOUT_MS } from './stores/deadline.js';

describe('--store-timeout', () => {
  it('defaults to 10 s, and reads the flag before BERTH_STORE_TIMEOUT', () => {
    expect(parseServeConfig([], {}).storeTimeoutMs).toBe(DEFAULT_STORE_TIMEOUT_MS);
    expect(DEFAULT_STORE_TIMEOUT_MS).toBe(10_000);
    expect(parseServeConfig([], { BERTH_STORE_TIMEOUT: '2500ms' }).storeTimeoutMs).toBe(2500);
    expect(parseServeConfig(['--store-timeout', '1m'], { BERTH_STORE_TIMEOUT: '2s' }).storeTimeoutMs).toBe(
      60_000,
    );
  });

  it('refuses a value that is not a positive duration, naming the flag', () => {
    for (const value of ['0', 'soon', '-1s', '10']) {
      let error: unknown;
      try {
        parseServeConfig(['--store-timeout', value], {});
      } catch (err) {
        error = err;
      }
      expect(isBerthError(error, 'invalid_config'), value).toBe(true);
      expect(String(error), value).toMatch(/--store-timeout/);
    }
  });
});
