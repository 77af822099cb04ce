import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
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

describe('host lifetime options', () => {
  it('defaults to the 1 GiB ceiling, one warm spare, a 5 minute idle timeout and a 30 s drain', () => {
    const config = parseServeConfig(['--host-ram', '24GiB'], {});
    expect(config).toMatchObject({
      sizing: { hostRamBytes: 24 * 1024 ** 3, overheadBytes: 1024 ** 3, sessionCeilingBytes: 1024 ** 3 },
      warmPool: 1,
      idleTimeoutMs: 300_000,
      blobStore: null,
      snapshotLimitBytes: 1024 ** 3,
      drainTimeoutMs: 30_000,
    });
  });

  it('reads every option from its flag or its BERTH_* variable', () => {
    const config = parseServeConfig(['--warm-pool', '3', '--idle-timeout', '90s'], {
      BERTH_HOST_RAM: '8GiB',
      BERTH_HOST_OVERHEAD: '512MiB',
      BERTH_SESSION_RAM_CEILING: '768MiB',
      BERTH_BLOB_STORE: '/var/lib/berth-blobs',
      BERTH_SNAPSHOT_LIMIT: '100MiB',
      BERTH_DRAIN_TIMEOUT: '1m',
    });
    expect(config).toMatchObject({
      sizing: {
        hostRamBytes: 8 * 1024 ** 3,
        overheadBytes: 512 * 1024 ** 2,
        sessionCeilingBytes: 768 * 1024 ** 2,
      },
      warmPool: 3,
      idleTimeoutMs: 90_000,
      blobStore: '/var/lib/berth-blobs',
      snapshotLimitBytes: 100 * 1024 ** 2,
      drainTimeoutMs: 60_000,
    });
  });

  it('refuses a sizing that leaves no room for one session, and bad values', () => {
    expect(configError(() => parseServeConfig(['--host-ram', '1GiB'], {}))).toMatch(
      /the sizing formula leaves no room for a session/,
    );
    expect(configError(() => parseServeConfig(['--session-ram-ceiling', '0'], {}))).toMatch(
      /--session-ram-ceiling must be more than 0/,
    );
    expect(configError(() => parseServeConfig(['--warm-pool', '-1'], {}))).toMatch(/--warm-pool/);
    expect(configError(() => parseServeConfig(['--warm-pool', '65'], {}))).toMatch(/from 0 to 64/);
    expect(configError(() => parseServeConfig(['--idle-timeout', 'soon'], {}))).toMatch(/--idle-timeout/);
    expect(configError(() => parseServeConfig(['--host-ram', 'lots'], {}))).toMatch(/--host-ram/);
  });
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-secrets-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('keys kept off the command line', () => {
  it('reads tenant keys from --api-keys-file (comments and blank lines skipped), with no warning', async () => {
    const file = path.join(dir, 'keys');
    await writeFile(file, '# tenants\nalpha:alpha-key-123\n\nbeta:beta-key-456\n');
    const config = parseServeConfig(['--api-keys-file', file], {});
    expect([...config.apiKeys]).toEqual([
      ['alpha-key-123', 'alpha'],
      ['beta-key-456', 'beta'],
    ]);
    expect(config.warnings.filter((w) => w.includes('--api-keys'))).toEqual([]);
  });

  it('warns when tenant keys are given as a flag, not when they come from the environment', () => {
    const keyWarnings = (config: { warnings: string[] }): string[] =>
      config.warnings.filter((w) => w.includes('--api-keys'));
    expect(keyWarnings(parseServeConfig(['--api-keys', 'alpha:alpha-key-123'], {}))).toEqual([
      expect.stringMatching(/--api-keys on the command line/),
    ]);
    expect(keyWarnings(parseServeConfig([], { BERTH_API_KEYS: 'alpha:alpha-key-123' }))).toEqual([]);
  });

  it('takes the model key from --model-api-key-file, which means a real model', async () => {
    const file = path.join(dir, 'model-key');
    await writeFile(file, 'sk-ant-from-a-file\n');
    const config = parseServeConfig(['--model-api-key-file', file], { ANTHROPIC_API_KEY: 'sk-ant-env' });
    expect(config.modelApiKey).toBe('sk-ant-from-a-file');
    expect(config.modelEndpoint).toBe('https://api.anthropic.com');
  });

  it('refuses unreadable or malformed secret files without echoing their content', async () => {
    const twoKeys = path.join(dir, 'two-keys');
    await writeFile(twoKeys, 'sk-ant-one\nsk-ant-two\n');
    const message = configError(() => parseServeConfig(['--model-api-key-file', twoKeys], {}));
    expect(message).toMatch(/one key on one line/);
    expect(message).not.toContain('sk-ant-one');
    expect(configError(() => parseServeConfig(['--api-keys-file', path.join(dir, 'missing')], {}))).toMatch(
      /--api-keys-file .*missing/,
    );
    expect(
      configError(() =>
        parseServeConfig(['--api-keys-file', twoKeys, '--api-keys', 'alpha:alpha-key-123'], {}),
      ),
    ).toMatch(/exclude each other/);
  });
});
