/**
 * `npm run lint` part: fails when a source file under src/ is longer than {@link MAX_LINES} lines, tests
 * beside the code included. A file that long nearly always holds two jobs (STYLE.md); split it by job.
 * The conformance suites (src/testing/conformance/) are exempt: each is a flat list of cases that users
 * read as one contract, and splitting it would only scatter the contract.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isMain, sourceFiles } from './source-graph.js';

export const MAX_LINES = 500;

/** Folders under src/ whose files may be longer. */
const EXEMPT = ['testing/conformance'];

export interface LongFile {
  file: string;
  lines: number;
}

/** Lines as `wc -l` counts them, plus a last line without its newline. */
export function countLines(text: string): number {
  const newlines = text.split('\n').length - 1;
  return text.endsWith('\n') || text === '' ? newlines : newlines + 1;
}

/** The files under `root` over `max` lines, longest first. */
export function findLongFiles(root: string, max = MAX_LINES): LongFile[] {
  const exempt = EXEMPT.map((dir) => path.join(root, dir) + path.sep);
  return sourceFiles(root, { tests: true })
    .filter((file) => !exempt.some((dir) => file.startsWith(dir)))
    .map((file) => ({ file, lines: countLines(readFileSync(file, 'utf8')) }))
    .filter((f) => f.lines > max)
    .sort((a, b) => b.lines - a.lines);
}

if (isMain(import.meta.filename)) {
  const root = path.resolve(import.meta.dirname, '..', 'src');
  const long = findLongFiles(root);
  for (const { file, lines } of long) {
    console.error(`too long: src/${path.relative(root, file)} has ${lines} lines (at most ${MAX_LINES})`);
  }
  if (long.length > 0) process.exit(1);
  console.log(`no source file under src/ is over ${MAX_LINES} lines`);
}
