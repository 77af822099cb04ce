/**
 * `npm run lint` part: fails when production code loads the testing module (src/testing/: the scripted
 * model, the conformance suites) through static imports. Production code is what the package's entry
 * points load: `berth` (src/index.ts) and the CLI (src/cli/main.ts). Only value imports count (type-only
 * imports vanish at build time); a dynamic `import()` is how the server loads the scripted model, and the
 * CLI its `mock-model` and `conformance` commands, when asked for.
 */
import path from 'node:path';
import { importGraph, isMain, sourceFiles } from './source-graph.js';

/** Entry points of production code, relative to src/. */
export const PRODUCTION_ENTRIES = ['index.ts', 'cli/main.ts'];

/**
 * For each module under `root/testing/` that an entry reaches through static value imports, the chain of
 * imports from the entry to it (the first one found, breadth first: a shortest chain).
 */
export function findTestingImports(root: string, entries = PRODUCTION_ENTRIES): string[][] {
  const graph = importGraph(sourceFiles(root, { tests: false }));
  const testing = path.join(root, 'testing') + path.sep;
  const chains: string[][] = [];
  const via = new Map<string, string | null>();
  const queue: string[] = [];
  for (const entry of entries.map((e) => path.join(root, e))) {
    if (!graph.has(entry)) throw new Error(`${entry}: no such entry point`);
    if (!via.has(entry)) {
      via.set(entry, null);
      queue.push(entry);
    }
  }
  for (let file = queue.shift(); file !== undefined; file = queue.shift()) {
    if (file.startsWith(testing)) {
      const chain: string[] = [];
      for (let at: string | null | undefined = file; at; at = via.get(at)) chain.unshift(at);
      chains.push(chain);
      continue;
    }
    for (const edge of graph.get(file) ?? []) {
      if (edge.typeOnly || via.has(edge.target)) continue;
      via.set(edge.target, file);
      queue.push(edge.target);
    }
  }
  return chains;
}

if (isMain(import.meta.filename)) {
  const root = path.resolve(import.meta.dirname, '..', 'src');
  const chains = findTestingImports(root);
  for (const chain of chains) {
    console.error(
      `production code loads the testing module: ${chain.map((f) => path.relative(root, f)).join(' -> ')}`,
    );
  }
  if (chains.length > 0) process.exit(1);
  console.log(`production code (${PRODUCTION_ENTRIES.join(', ')}) does not load src/testing/`);
}
