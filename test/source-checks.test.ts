/**
 * The source checks of `npm run lint` (scripts/): each against a small tree made for it, and the check
 * that production code does not load src/testing/ against the real tree as well.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { findLongFiles, MAX_LINES } from '../scripts/check-file-length.js';
import { findImportCycles } from '../scripts/check-import-cycles.js';
import { findTestingImports } from '../scripts/check-production-imports.js';

let root: string;

beforeEach(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), 'berth-source-checks-'));
});

afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function files(tree: Record<string, string>): Promise<void> {
  for (const [name, text] of Object.entries(tree)) {
    await mkdir(path.dirname(path.join(root, name)), { recursive: true });
    await writeFile(path.join(root, name), text);
  }
}

const rel = (chains: string[][]): string[][] => chains.map((c) => c.map((f) => path.relative(root, f)));

describe('check-import-cycles', () => {
  it('counts a cycle of type-only imports, not one closed by a dynamic import', async () => {
    await files({
      'session/a.ts': "import type { B } from '../stores/b.js';\nexport type A = B;\n",
      'stores/b.ts': "import type {\n  A,\n} from '../session/a.js';\nexport type B = { a?: A };\n",
      'x.ts': "export async function load() {\n  return import('./y.js');\n}\n",
      'y.ts': "import { load } from './x.js';\nexport const y = load;\n",
    });
    expect(rel(findImportCycles(root))).toEqual([['session/a.ts', 'stores/b.ts', 'session/a.ts']]);
  });
});

describe('check-file-length', () => {
  it(`names every file over ${MAX_LINES} lines, tests included, except the conformance suites`, async () => {
    const lines = (n: number): string => 'x\n'.repeat(n);
    await files({
      'ok.ts': lines(MAX_LINES),
      'long.ts': lines(MAX_LINES + 1),
      'long.test.ts': lines(MAX_LINES + 40),
      'no-newline-at-end.ts': `${lines(MAX_LINES)}x`,
      'testing/conformance/cases.ts': lines(MAX_LINES * 3),
      'testing/other.ts': lines(MAX_LINES + 2),
    });
    const long = findLongFiles(root).map((f) => [path.relative(root, f.file), f.lines]);
    expect(long).toEqual([
      ['long.test.ts', MAX_LINES + 40],
      ['testing/other.ts', MAX_LINES + 2],
      ['long.ts', MAX_LINES + 1],
      ['no-newline-at-end.ts', MAX_LINES + 1],
    ]);
  });
});

describe('check-production-imports', () => {
  it('finds the chain from an entry point to a static value import of testing/', async () => {
    await files({
      'index.ts':
        "export { startServer } from './server.js';\nimport type { Model } from './testing/model.js';\n",
      'server.ts':
        "import { helper } from './util.js';\nexport async function startServer() {\n  await import('./testing/model.js');\n}\n",
      'util.ts': "import { scenario } from './testing/scenario.js';\nexport const helper = scenario;\n",
      'testing/model.ts': 'export type Model = string;\n',
      'testing/scenario.ts': 'export const scenario = 1;\n',
      'cli/main.ts': "export async function main() {\n  await import('./conformance.js');\n}\n",
      'cli/conformance.ts':
        "import { scenario } from '../testing/scenario.js';\nexport const c = scenario;\n",
    });
    expect(rel(findTestingImports(root))).toEqual([
      ['index.ts', 'server.ts', 'util.ts', 'testing/scenario.ts'],
    ]);
    expect(() => findTestingImports(root, ['missing.ts'])).toThrow(/no such entry point/);
  });

  it('finds none in Berth itself: `berth` and the CLI load the scripted model only when asked', () => {
    const found = findTestingImports(path.resolve('src'));
    expect(found.map((chain) => chain.map((f) => path.relative('src', f)).join(' -> '))).toEqual([]);
  });
});
