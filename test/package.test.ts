/**
 * Berth as a dependency: the package `npm pack` makes, installed into a fresh project the way npm lays it
 * out (`node_modules/berth`), is imported by a plain `node` process through its public entry points
 * (`berth`, `berth/testing`, `berth/testing/vitest`) and type-checked by `tsc` through their `types`.
 *
 * The package is packed from the `dist/` that `npm test` builds first (`--ignore-scripts`: packing must not
 * rebuild). Instead of `npm install`, which would copy the SDK's ~364 MB native binary out of the cache, the
 * tarball is extracted into the project and the dependencies it declares are linked from this checkout's
 * node_modules: offline, a few seconds, and a dependency missing from package.json still fails to resolve.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const REPO = path.resolve('.');
// What a project that uses `berth/testing/vitest` or writes TypeScript has installed itself.
const USER_DEPENDENCIES = ['vitest', '@types/node'];

let dir: string;
let project: string;
let packed: string[];

beforeAll(async () => {
  if (!existsSync(path.join(REPO, 'dist', 'index.js'))) {
    throw new Error('dist/index.js is missing: run `npm run build` (npm test builds first)');
  }
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-package-'));
  const { stdout } = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', dir], {
    cwd: REPO,
    timeout: 30_000,
  });
  const [info] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  packed = info!.files.map((f) => f.path);
  project = path.join(dir, 'project');
  const installed = path.join(project, 'node_modules', 'berth');
  await mkdir(installed, { recursive: true });
  await run('tar', ['-xzf', path.join(dir, info!.filename), '-C', installed, '--strip-components=1']);
  const manifest = JSON.parse(await readFile(path.join(installed, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
  };
  for (const name of [...Object.keys(manifest.dependencies), ...USER_DEPENDENCIES]) {
    const link = path.join(project, 'node_modules', name);
    await mkdir(path.dirname(link), { recursive: true });
    await symlink(path.join(REPO, 'node_modules', name), link, 'dir');
  }
  await writeFile(path.join(project, 'package.json'), JSON.stringify({ name: 'uses-berth', type: 'module' }));
}, 60_000);

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('the packed package', () => {
  it('holds the built entry points and their types, and no sources or tests', () => {
    for (const file of [
      'dist/index.js',
      'dist/index.d.ts',
      'dist/testing/index.js',
      'dist/testing/index.d.ts',
      'dist/testing/vitest.js',
      'dist/testing/vitest.d.ts',
      'bin/berth.js',
    ]) {
      expect(packed, file).toContain(file);
    }
    expect(packed.filter((f) => f.startsWith('src/') || f.startsWith('test/') || /\.test\./.test(f))).toEqual(
      [],
    );
  });

  it('is imported by a plain node process, and starts a server in-process', async () => {
    const script = `
      import { mkdtempSync } from 'node:fs';
      import path from 'node:path';
      const berth = await import('berth');
      const testing = await import('berth/testing');
      const vitest = await import('berth/testing/vitest');
      const kinds = (m, names) => Object.fromEntries(names.map((n) => [n, typeof m[n]]));
      const config = berth.parseServeConfig(
        ['--port', '0', '--data-dir', mkdtempSync(path.join(process.cwd(), 'data-')), '--warm-pool', '0'],
        { PATH: process.env.PATH },
      );
      const server = await berth.startBerth(config, { telemetry: berth.makeTelemetry() });
      const health = await (await fetch(server.url + '/healthz')).json();
      const scripted = typeof server.mockModel?.url;
      await server.close();
      console.log(JSON.stringify({
        resolved: import.meta.resolve('berth'),
        berth: kinds(berth, ['startBerth', 'openBerthCore', 'parseServeConfig', 'BerthError', 'ERROR_CODES',
          'EVENT_ERROR_TYPES', 'openStores', 'SqliteRegistry', 'PostgresRegistry', 'RedisRegistry', 'S3Registry',
          'DurableMirror', 'openBlobStore', 'DirBlobStore', 'sdkRuntime', 'formatErrorForLog', 'redactUrl']),
        testing: kinds(testing, ['startMockModel', 'runConformance']),
        vitest: kinds(vitest, ['runSessionStoreConformance', 'runRegistryConformance', 'runEventLogConformance']),
        code: new berth.BerthError('invalid_id', 'x').status,
        health,
        scripted,
      }));
    `;
    await writeFile(path.join(project, 'check.mjs'), script);
    const { stdout } = await run(process.execPath, ['check.mjs'], {
      cwd: project,
      env: { PATH: process.env.PATH, HOME: project },
      timeout: 30_000,
    });
    const result = JSON.parse(stdout.trim().split('\n').at(-1)!);
    expect(result.resolved).toBe(`file://${path.join(project, 'node_modules', 'berth', 'dist', 'index.js')}`);
    for (const group of ['berth', 'testing', 'vitest'] as const) {
      for (const [name, kind] of Object.entries(result[group] as Record<string, string>)) {
        expect(kind, `${group}: ${name}`).not.toBe('undefined');
      }
    }
    expect(result.code).toBe(400);
    expect(result.health).toEqual({ status: 'ok' });
    expect(result.scripted).toBe('string');
  });

  it('type-checks a TypeScript project that imports it', async () => {
    await writeFile(
      path.join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          strict: true,
          noEmit: true,
          skipLibCheck: true,
          types: ['node'],
        },
        files: ['uses-berth.ts'],
      }),
    );
    await writeFile(
      path.join(project, 'uses-berth.ts'),
      `
      import { startBerth, type AgentRuntime, type BerthServer, type BlobStore, type SessionRegistry } from 'berth';
      import { startMockModel, type MockModel } from 'berth/testing';
      import { runRegistryConformance } from 'berth/testing/vitest';
      export const start: typeof startBerth = startBerth;
      export type Parts = [AgentRuntime, BerthServer, BlobStore, SessionRegistry, MockModel];
      export const helpers = [startMockModel, runRegistryConformance];
      `,
    );
    const tsc = path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');
    const checked = await run(process.execPath, [tsc, '-p', 'tsconfig.json'], {
      cwd: project,
      timeout: 45_000,
    }).catch((err: Error & { stdout?: string }) => ({ stdout: `tsc failed:\n${err.stdout || err.message}` }));
    expect(checked.stdout).toBe('');
  });
});
