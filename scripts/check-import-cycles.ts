/**
 * `npm run lint` part: fails when the imports under src/ form a cycle. A cycle makes module initialisation
 * order matter, which is how a layer ends up seeing another half-built; a cycle of type-only imports
 * (`import type`) costs nothing at run time but means a type lives in the wrong room, so it counts too.
 *
 * This replaces ESLint's `import/no-cycle`, whose resolver ships per-platform native packages that
 * `npm ci` cannot lock here.
 */
import path from 'node:path';
import { importGraph, isMain, sourceFiles } from './source-graph.js';

/** Every cycle found by a depth-first walk, each as the files in order with the first repeated at the end. */
export function findImportCycles(root: string): string[][] {
  const graph = importGraph(sourceFiles(root, { tests: false }));
  const state = new Map<string, 'visiting' | 'done'>();
  const cycles: string[][] = [];
  const visit = (file: string, trail: string[]): void => {
    if (state.get(file) === 'done') return;
    if (state.get(file) === 'visiting') {
      cycles.push([...trail.slice(trail.indexOf(file)), file]);
      return;
    }
    state.set(file, 'visiting');
    for (const edge of graph.get(file) ?? []) visit(edge.target, [...trail, file]);
    state.set(file, 'done');
  };
  for (const file of graph.keys()) visit(file, []);
  return cycles;
}

if (isMain(import.meta.filename)) {
  const root = path.resolve(import.meta.dirname, '..', 'src');
  const cycles = findImportCycles(root);
  for (const cycle of cycles) {
    console.error(`import cycle: ${cycle.map((f) => path.relative(root, f)).join(' -> ')}`);
  }
  if (cycles.length > 0) process.exit(1);
  console.log('no import cycles under src/ (type-only imports included)');
}
