import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { parseRouterConfig, routerHelp, ROUTER_OPTIONS } from './router-config.js';

const PG = 'postgres://berth@db:5432/berth';

function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isBerthError(err, 'invalid_config')).toBe(true);
    return (err as Error).message;
  }
  throw new Error('expected an invalid_config error');
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-router-config-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('parseRouterConfig', () => {
  it('fills every default', () => {
    expect(parseRouterConfig(['--store', PG], {})).toEqual({
      port: 8080,
      host: '127.0.0.1',
      store: PG,
      storeTimeoutMs: 10_000,
      apiKeys: new Map(),
      refreshMs: 1000,
      maxBodyBytes: 1024 * 1024,
      logFormat: null,
      logLevel: 'info',
      warnings: [],
    });
  });

  it('takes flags, then BERTH_ROUTER_* variables, then the shared BERTH_* ones', () => {
    const env = {
      BERTH_ROUTER_PORT: '9001',
      BERTH_PORT: '7000',
      BERTH_STORE: 'redis://127.0.0.1:6379/0',
      BERTH_ROUTER_REFRESH: '2s',
      BERTH_MAX_BODY: '2MiB',
      BERTH_API_KEYS: 'alpha:alpha-key-123',
    };
    const config = parseRouterConfig(['--host', '0.0.0.0'], env);
    expect(config).toMatchObject({
      port: 9001,
      host: '0.0.0.0',
      store: 'redis://127.0.0.1:6379/0',
      refreshMs: 2000,
      maxBodyBytes: 2 * 1024 * 1024,
    });
    expect(config.apiKeys.get('alpha-key-123')).toBe('alpha');
    expect(parseRouterConfig(['--store', PG, '--port', '9100'], env).port).toBe(9100);
    expect(parseRouterConfig([], { ...env, BERTH_ROUTER_STORE: PG }).store).toBe(PG);
    // The host's own port and bind address never reach the router.
    expect(parseRouterConfig(['--store', PG], { BERTH_PORT: '7000', BERTH_HOST: '0.0.0.0' })).toMatchObject({
      port: 8080,
      host: '127.0.0.1',
    });
  });

  it('takes --refresh as milliseconds or a duration', () => {
    expect(parseRouterConfig(['--store', PG, '--refresh', '250'], {}).refreshMs).toBe(250);
    expect(parseRouterConfig(['--store', PG, '--refresh', '3s'], {}).refreshMs).toBe(3000);
    expect(configError(() => parseRouterConfig(['--store', PG, '--refresh', '0'], {}))).toMatch(/--refresh/);
    expect(configError(() => parseRouterConfig(['--store', PG, '--refresh', 'often'], {}))).toMatch(
      /--refresh/,
    );
  });

  it('refuses to start without --store, naming PostgreSQL and Redis', () => {
    const message = configError(() => parseRouterConfig([], {}));
    expect(message).toMatch(/--store is required/);
    expect(message).toMatch(/PostgreSQL/);
    expect(message).toMatch(/Redis/);
  });

  it('refuses stores without a host registry: SQLite, S3, memory, anything else', () => {
    for (const store of [
      'sqlite:./.berth/berth.db',
      's3://bucket/prefix?endpoint=http://127.0.0.1:9000',
      'memory:',
      'mysql://db/berth',
      'just-a-path',
    ]) {
      const message = configError(() => parseRouterConfig(['--store', store], {}));
      expect(message).toMatch(/PostgreSQL/);
      expect(message).toMatch(/Redis/);
    }
    expect(configError(() => parseRouterConfig(['--store', 'sqlite:x.db'], {}))).toMatch(
      /sqlite: has no host registry/,
    );
    for (const store of ['postgresql://db/berth', 'rediss://cache:6380']) {
      expect(parseRouterConfig(['--store', store], {}).store).toBe(store);
    }
  });

  it('never echoes a store password', () => {
    const message = configError(() =>
      parseRouterConfig(['--store', 's3://b/p?secretAccessKey=hunter22'], {}),
    );
    expect(message).not.toContain('hunter22');
  });

  it('refuses a non-loopback bind without API keys', () => {
    expect(configError(() => parseRouterConfig(['--store', PG, '--host', '0.0.0.0'], {}))).toMatch(
      /--host 0.0.0.0: without --api-keys/,
    );
    for (const host of ['127.0.0.1', 'localhost', '::1']) {
      expect(parseRouterConfig(['--store', PG, '--host', host], {}).host).toBe(host);
    }
  });

  it('reads keys from --api-keys-file, and refuses it together with --api-keys', async () => {
    const file = path.join(dir, 'keys');
    await writeFile(file, '# tenants\nalpha:alpha-key-123\n\nbeta:beta-key-4567\n');
    const config = parseRouterConfig(['--store', PG, '--api-keys-file', file, '--host', '0.0.0.0'], {});
    expect([...config.apiKeys.values()].sort()).toEqual(['alpha', 'beta']);
    expect(config.warnings).toEqual([]);
    expect(
      configError(() =>
        parseRouterConfig(['--store', PG, '--api-keys-file', file, '--api-keys', 'alpha:alpha-key-123'], {}),
      ),
    ).toMatch(/exclude each other/);
    const missing = configError(() =>
      parseRouterConfig(['--store', PG, '--api-keys-file', path.join(dir, 'nope')], {}),
    );
    expect(missing).toMatch(/--api-keys-file/);
  });

  it('warns, as serve does, about keys on the command line', () => {
    const config = parseRouterConfig(['--store', PG, '--api-keys', 'alpha:alpha-key-123'], {});
    expect(config.warnings.join()).toMatch(/--api-keys on the command line/);
    expect(parseRouterConfig(['--store', PG], { BERTH_API_KEYS: 'alpha:alpha-key-123' }).warnings).toEqual(
      [],
    );
  });

  it('rejects bad values with a message naming the option', () => {
    expect(configError(() => parseRouterConfig(['--store', PG, '--port', 'x'], {}))).toMatch(/--port/);
    expect(configError(() => parseRouterConfig(['--store', PG, '--max-body', 'lots'], {}))).toMatch(
      /--max-body/,
    );
    expect(configError(() => parseRouterConfig(['--store', PG, '--store-timeout', '0'], {}))).toMatch(
      /--store-timeout/,
    );
    expect(configError(() => parseRouterConfig(['--store', PG, '--api-keys', 'nocolon'], {}))).toMatch(
      /--api-keys/,
    );
    expect(configError(() => parseRouterConfig(['--store', PG, '--bogus'], {}))).toMatch(/bogus/);
    expect(configError(() => parseRouterConfig(['--store', PG, 'extra'], {}))).toMatch(/extra/);
  });

  it('documents every option with its variables', () => {
    const help = routerHelp();
    for (const option of ROUTER_OPTIONS) {
      expect(help).toContain(`--${option.flag}`);
      for (const name of option.env) expect(help).toContain(name);
    }
  });
});
