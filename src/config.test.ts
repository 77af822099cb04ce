import { describe, expect, it } from 'vitest';
import { parseApiKeys, parseDuration, parseServeConfig, parseSize } from './config.js';
import { isBerthError } from './errors.js';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isBerthError(err, 'invalid_config')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected an invalid_config error');
}

describe('parseServeConfig', () => {
  it('fills every default, and uses the scripted model without ANTHROPIC_API_KEY', () => {
    const config = parseServeConfig([], { PATH: '/bin' });
    expect(config).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
      modelEndpoint: null,
      pattern: 'long-running',
      maxBodyBytes: 1024 * 1024,
      heartbeatMs: 15_000,
      agentPath: '/bin',
      recycle: { afterTurns: 0, softRssBytes: 0, maxAgeMs: 0, hardRssBytes: 0 },
      rssSampleIntervalMs: 5000,
    });
    expect(config.store).toBe(`sqlite:${config.dataDir}/berth.db`);
    expect(config.apiKeys.size).toBe(0);
  });

  it('uses the real API when ANTHROPIC_API_KEY is set, and --model-endpoint when given', () => {
    expect(parseServeConfig([], { ANTHROPIC_API_KEY: 'sk-x' }).modelEndpoint).toBe(
      'https://api.anthropic.com',
    );
    const config = parseServeConfig(['--model-endpoint', 'http://127.0.0.1:9/'], {});
    expect(config.modelEndpoint).toBe('http://127.0.0.1:9');
  });

  it('takes flags over environment variables', () => {
    const config = parseServeConfig(['--port', '9000'], { BERTH_PORT: '7000', BERTH_HEARTBEAT: '2s' });
    expect(config.port).toBe(9000);
    expect(config.heartbeatMs).toBe(2000);
  });

  it('rejects bad values with a message naming the option', () => {
    expect(configError(() => parseServeConfig(['--port', 'x'], {}))).toMatch(/--port/);
    expect(configError(() => parseServeConfig(['--pattern', 'nope'], {}))).toMatch(/--pattern/);
    expect(configError(() => parseServeConfig(['--bogus'], {}))).toMatch(/bogus/);
    expect(configError(() => parseServeConfig(['--max-body', 'lots'], {}))).toMatch(/--max-body/);
    expect(configError(() => parseServeConfig(['--model-endpoint', 'ftp://x'], {}))).toMatch(
      /--model-endpoint/,
    );
    expect(configError(() => parseServeConfig([], { BERTH_MOCK_MODEL: 'maybe' }))).toMatch(
      /BERTH_MOCK_MODEL/,
    );
  });

  it('parses the recycling limits from flags and environment variables', () => {
    const config = parseServeConfig(
      ['--recycle-after-turns', '50', '--recycle-rss', '768MiB', '--rss-sample-interval', '500ms'],
      { BERTH_RECYCLE_AGE: '2h', BERTH_HARD_RSS: '1GiB' },
    );
    expect(config.recycle).toEqual({
      afterTurns: 50,
      softRssBytes: 768 * 1024 ** 2,
      maxAgeMs: 2 * 3_600_000,
      hardRssBytes: 1024 ** 3,
    });
    expect(config.rssSampleIntervalMs).toBe(500);
  });

  it('rejects bad recycling limits', () => {
    expect(configError(() => parseServeConfig(['--recycle-after-turns', '2.5'], {}))).toMatch(
      /--recycle-after-turns/,
    );
    expect(configError(() => parseServeConfig([], { BERTH_RECYCLE_AFTER_TURNS: '-1' }))).toMatch(
      /--recycle-after-turns/,
    );
    expect(configError(() => parseServeConfig(['--recycle-rss', 'big'], {}))).toMatch(/--recycle-rss/);
    expect(configError(() => parseServeConfig(['--recycle-age', '10'], {}))).toMatch(/--recycle-age/);
    expect(configError(() => parseServeConfig(['--hard-rss', '1x'], {}))).toMatch(/--hard-rss/);
    expect(configError(() => parseServeConfig(['--rss-sample-interval', '0'], {}))).toMatch(
      /--rss-sample-interval/,
    );
    expect(
      configError(() => parseServeConfig(['--recycle-rss', '1GiB', '--hard-rss', '512MiB'], {})),
    ).toMatch(/--hard-rss must be above --recycle-rss/);
  });

  it('refuses a non-loopback bind without API keys', () => {
    expect(configError(() => parseServeConfig(['--host', '0.0.0.0'], {}))).toMatch(/loopback/);
    const config = parseServeConfig(['--host', '0.0.0.0', '--api-keys', 'acme:secret-key-1'], {});
    expect(config.apiKeys.get('secret-key-1')).toBe('acme');
  });
});

describe('parsers', () => {
  it('parses sizes and durations', () => {
    expect(parseSize('1MiB', 'x')).toBe(1048576);
    expect(parseSize('512KiB', 'x')).toBe(524288);
    expect(parseSize('2GB', 'x')).toBe(2e9);
    expect(parseSize('100', 'x')).toBe(100);
    expect(parseDuration('90s', 'x')).toBe(90_000);
    expect(parseDuration('5m', 'x')).toBe(300_000);
    expect(parseDuration('250ms', 'x')).toBe(250);
    expect(parseDuration('0', 'x')).toBe(0);
    expect(() => parseDuration('10', 'x')).toThrow(/not a duration/);
    expect(() => parseSize('-1', 'x')).toThrow(/not a size/);
  });

  it('parses API keys and rejects malformed pairs', () => {
    expect([...parseApiKeys('a:key-aaaa-1, b:key-bbbb-2')]).toEqual([
      ['key-aaaa-1', 'a'],
      ['key-bbbb-2', 'b'],
    ]);
    expect(() => parseApiKeys('nokey')).toThrow(/tenant:key/);
    expect(() => parseApiKeys('../x:key-aaaa-1')).toThrow(/tenant:key/);
    expect(() => parseApiKeys('a:short')).toThrow(/at least 8/);
    expect(() => parseApiKeys('a:key-aaaa-1,b:key-aaaa-1')).toThrow(/twice/);
  });
});
