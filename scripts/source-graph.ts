/**
 * The import graph of src/ as the lint checks see it: every `.ts` file, and for each the relative modules
 * it imports, each marked type-only (`import type`, `export type ... from`: gone at build time) or not.
 * A dynamic `import()` is no edge: it loads on demand, which is how a module avoids a static dependency.
 * Paths are absolute, with `.js` specifiers mapped back to the `.ts` source.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

export interface ImportEdge {
  /** The imported module's absolute `.ts` path. */
  target: string;
  typeOnly: boolean;
}

// `import x from './a.js'`, `import type {...} from`, `export * from`, `import './side-effect.js'`; the
// specifier may follow a multi-line list of names.
const IMPORT = /^\s*(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s+)?['"](\.[^'"]+)['"]/gm;

/** Every `.ts` file under `dir`, tests (`*.test.ts`) included unless `tests` is false. */
export function sourceFiles(dir: string, options: { tests: boolean }): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full, options);
    if (!entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) return [];
    return options.tests || !entry.name.endsWith('.test.ts') ? [full] : [];
  });
}

export function importsOf(file: string): ImportEdge[] {
  const text = readFileSync(file, 'utf8');
  return [...text.matchAll(IMPORT)].map((m) => ({
    target: path.resolve(path.dirname(file), m[2]!.replace(/\.js$/, '.ts')),
    typeOnly: m[1] !== undefined,
  }));
}

/** Each file's imports, restricted to the files of the graph. */
export function importGraph(files: readonly string[]): Map<string, ImportEdge[]> {
  const known = new Set(files);
  return new Map(files.map((file) => [file, importsOf(file).filter((edge) => known.has(edge.target))]));
}

/** True when this module is the script node was started with (`tsx scripts/x.ts`), not an import of it. */
export function isMain(importMetaFilename: string): boolean {
  return process.argv[1] !== undefined && path.resolve(process.argv[1]) === importMetaFilename;
}
