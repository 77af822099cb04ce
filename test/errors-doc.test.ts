/**
 * docs/errors.md and the two tables of src/errors.ts say the same thing: every HTTP error code (with its
 * status and type) and every error type the event streams carry is in the doc, and the doc lists nothing
 * else. The tables are read, not copied here, so a code added in code fails this test until it is
 * documented. A scan of the code that emits stream errors keeps the event table complete.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES, EVENT_ERROR_TYPES } from '../src/errors.js';

const DOC = readFileSync(path.resolve('docs/errors.md'), 'utf8');

/** The rows of the markdown table whose header's first cell is `firstHeader`, as trimmed cells. */
function table(markdown: string, firstHeader: string): string[][] {
  const lines = markdown.split('\n');
  const start = lines.findIndex((l) => l.startsWith('|') && cells(l)[0] === firstHeader);
  if (start < 0) throw new Error(`docs/errors.md has no table headed ${firstHeader}`);
  const rows: string[][] = [];
  // The header, then the `| --- |` separator, then rows until the first line that is not one.
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    rows.push(cells(line));
  }
  return rows;
}

function cells(line: string): string[] {
  return line
    .slice(1, line.trimEnd().length - 1)
    .split('|')
    .map((c) => c.trim());
}

/** `\`name\`` -> `name`; anything else is a row the test does not understand. */
function name(cell: string | undefined): string {
  const match = /^`([a-z0-9_]+)`$/.exec(cell ?? '');
  if (!match) throw new Error(`a row of docs/errors.md does not start with a \`code\`: ${cell}`);
  return match[1]!;
}

describe('docs/errors.md', () => {
  it('lists every HTTP error code with its status and type, and no other', () => {
    const rows = table(DOC, 'code');
    const documented = new Map(rows.map((r) => [name(r[0]), { status: Number(r[1]), type: r[2] }]));
    expect(documented.size, 'a code is listed twice').toBe(rows.length);
    expect([...documented.keys()].sort()).toEqual(Object.keys(ERROR_CODES).sort());
    for (const [code, spec] of Object.entries(ERROR_CODES)) {
      expect(documented.get(code), code).toEqual({ status: spec.status, type: `\`${spec.type}\`` });
    }
  });

  it('lists every error type of the event streams, where it appears, and no other', () => {
    const rows = table(DOC, '`error.type`');
    const documented = new Map(rows.map((r) => [name(r[0]), r[1]]));
    expect(documented.size, 'a type is listed twice').toBe(rows.length);
    expect([...documented.keys()].sort()).toEqual(Object.keys(EVENT_ERROR_TYPES).sort());
    for (const [type, spec] of Object.entries(EVENT_ERROR_TYPES)) {
      expect(documented.get(type), type).toBe(spec.in.join(', '));
    }
  });
});

/** Production sources of the parts that emit `session.error`, `task.error` and `group.error`. */
function emitters(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
      const full = path.join(dir, e.name);
      if (e.isDirectory()) return walk(full);
      return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') ? [full] : [];
    });
  return ['session', 'host', 'tasks', 'groups', 'stores'].flatMap((d) => walk(path.resolve('src', d)));
}

// Where a stream error's type is written as a literal: `error: { type: 'x'`, a session's
// `endTurnWithError(turn, 'x'` and `killProcess('x'`, `stop_reason: { type: 'error', subtype: 'x'`, and the
// fallback of `isBerthError(err) ? err.code : 'x'`.
const EMITTED = [
  /error:\s*\{\s*type:\s*'([a-z0-9_]+)'/g,
  /endTurnWithError\(\s*[\w.]+,\s*'([a-z0-9_]+)'/g,
  /killProcess\(\s*'([a-z0-9_]+)'/g,
  /subtype:\s*'([a-z0-9_]+)'/g,
  /\?\s*err\.code\s*:\s*'([a-z0-9_]+)'/g,
];

describe('the event error table', () => {
  it('holds every error type the code emits by name', () => {
    const found = new Map<string, string>();
    for (const file of emitters()) {
      const text = readFileSync(file, 'utf8');
      for (const pattern of EMITTED) {
        for (const m of text.matchAll(pattern)) found.set(m[1]!, path.relative('src', file));
      }
    }
    // The scan must keep seeing the emitters it was written for, or it would pass by finding nothing.
    expect(found.size).toBeGreaterThanOrEqual(10);
    for (const type of ['subprocess_exited', 'mirror_delayed', 'hard_rss_exceeded', 'timed_out']) {
      expect(found.has(type), `the scan no longer finds ${type}`).toBe(true);
    }
    const unknown = [...found].filter(([type]) => !(type in EVENT_ERROR_TYPES) && !(type in ERROR_CODES));
    expect(unknown, 'emitted but not in EVENT_ERROR_TYPES (src/errors.ts) and docs/errors.md').toEqual([]);
  });
});
