import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseServeConfig } from './config.js';
import { isBerthError } from './errors.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-secrets-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isBerthError(err, 'invalid_config')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected an invalid_config error');
}

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
