import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isBerthError } from '../errors.js';
import { CONSOLE_CSP, consoleRoutes } from './console-routes.js';
import type { Env } from './route-group.js';

/** Failures answered with their code's status, as the API's app does. */
function withErrors(app: Hono<Env>): Hono<Env> {
  app.onError((err) => new Response(null, { status: isBerthError(err) ? err.status : 500 }));
  return app;
}

let root: string;
let app: Hono<Env>;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'berth-console-'));
  const dir = path.join(root, 'console');
  await mkdir(path.join(dir, 'views'), { recursive: true });
  await writeFile(path.join(dir, 'index.html'), '<!doctype html><title>x</title>');
  await writeFile(path.join(dir, 'app.js'), 'export {};');
  await writeFile(path.join(dir, 'views', 'a.css'), 'body{}');
  await writeFile(path.join(dir, 'notes.md'), 'not a served type');
  await writeFile(path.join(root, 'secret.txt'), 'secret');
  await symlink(path.join(root, 'secret.txt'), path.join(dir, 'link.txt'));
  app = withErrors(new Hono<Env>());
  consoleRoutes({ dir }).register(app);
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('consoleRoutes', () => {
  it('serves index.html for /console and /console/, and each file with its type and the CSP', async () => {
    for (const route of ['/console', '/console/']) {
      const res = await app.request(route);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
      expect(await res.text()).toContain('<title>x</title>');
    }
    const js = await app.request('/console/app.js');
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const css = await app.request('/console/views/a.css');
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
    expect(await css.text()).toBe('body{}');
  });

  it('serves only the regular files it listed: no symlink, no other type, nothing outside', async () => {
    for (const route of [
      '/console/link.txt',
      '/console/notes.md',
      '/console/..%2fsecret.txt',
      '/console/views/..%2f..%2fsecret.txt',
      '/console/%2e%2e%2fsecret.txt',
      '/console/%zz',
      '/console/missing.js',
    ]) {
      expect([route, (await app.request(route)).status]).toEqual([route, 404]);
    }
  });

  it('answers 404 for every path when there is no console directory', async () => {
    const bare = withErrors(new Hono<Env>());
    consoleRoutes({ dir: path.join(root, 'nowhere') }).register(bare);
    expect((await bare.request('/console')).status).toBe(404);
  });
});
