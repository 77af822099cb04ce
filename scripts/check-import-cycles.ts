/**
 * `npm run lint` part: fails when the runtime imports under src/ form a cycle. A cycle makes module
 * initialisation order matter, which is how a layer ends up seeing another half-built.
 *
 * Only value imports count (`import type` and `export type` vanish at build time). This replaces ESLint's
 * `import/no-cycle`, whose resolver ships per-platform native packages that `npm ci` cannot lock here.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(import.meta.dirname, '..', 'src');
const IMPORT = /^\s*(?:import|export)\s+(?!type\b)(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) =>
    path.resolve(path.dirname(file), m[1]!.replace(/\.js$/, '.ts')),
  );
}

const graph = new Map(sourceFiles(ROOT).map((file) => [file, importsOf(file)]));
const state = new Map<string, 'visiting' | 'done'>();
const cycles: string[][] = [];

function visit(file: string, trail: string[]): void {
  if (state.get(file) === 'done') return;
  if (state.get(file) === 'visiting') {
    cycles.push([...trail.slice(trail.indexOf(file)), file]);
    return;
  }
  state.set(file, 'visiting');
  for (const next of graph.get(file) ?? []) if (graph.has(next)) visit(next, [...trail, file]);
  state.set(file, 'done');
}

for (const file of graph.keys()) visit(file, []);
if (cycles.length > 0) {
  for (const cycle of cycles)
    console.error(`import cycle: ${cycle.map((f) => path.relative(ROOT, f)).join(' -> ')}`);
  process.exit(1);
}
console.log(`no import cycles in ${graph.size} modules`);
