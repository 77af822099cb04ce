/**
 * Compares the answers a document shows with real ones: every documented key exists with the same JSON
 * type, recursively, and arrays have the same length; values are equal except ids (under id keys: the first
 * real answer that shows a documented id teaches it, and the same documented id must then always be the same real
 * one), timestamps (any ISO 8601 string), strings that elide with `...` (a pattern) and the values under
 * the caller's run-specific keys (type only). An example without `...` is the whole answer.
 */
import { ERROR_CODES, type ErrorCode } from '../../src/errors.js';
import { parseElidedJson } from './doc-blocks.js';

type JsonObject = Record<string, unknown>;

/** Ids as the page writes them: `PREFIX_` and a random part, or `PREFIX_...` for one it elides. */
const ID = /^(agent|env|sess|sevt|req|grp|task)_(?:[A-Za-z0-9_-]{6,}|[A-Za-z0-9]*\.\.\.)$/;
/**
 * Whether the value at `at` (a path such as `$.data[0].stop_reason.event_ids[1]`) is an id: under `id`, a
 * `*_id`, `*_ids` or `*-id` (a header) key, or `agent`. Elsewhere a string shaped like an id (`agent_toolset_20260401`) is an
 * ordinary value and must be equal.
 */
function isIdPath(at: string): boolean {
  const key = /([A-Za-z_-]+)(?:\[\d+\])*$/.exec(at)?.[1] ?? '';
  return key === 'id' || key === 'agent' || /[_-]ids?$/.test(key);
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** A real answer: its status and body text. */
export interface DocAnswer {
  status: number;
  text: string;
}

export class DocChecker {
  /** A documented id (or other documented value, such as a path) -> the real one. */
  readonly #known = new Map<string, string>();

  /** @param runSpecific keys whose values depend on the run: compared by JSON type only, recursively. */
  constructor(private readonly runSpecific: ReadonlySet<string>) {}

  /** Teaches the real value of a documented one. */
  learn(doc: string, real: string): void {
    this.#known.set(doc, real);
  }

  /** `text` with every documented id the checker has learned replaced by the real one. */
  substitute(text: string): string {
    let out = text;
    for (const [doc, real] of this.#known) out = out.replaceAll(doc, real);
    return out;
  }

  real(docId: string): string {
    const real = this.#known.get(docId);
    if (!real) throw new Error(`the walk has not met ${docId} yet`);
    return real;
  }

  /** What differs between a documented value and the real one, as `path: what` lines. */
  compare(doc: unknown, real: unknown, whole: boolean, root = '$'): string[] {
    const out: string[] = [];
    this.compareAt(doc, real, root, whole, false, out);
    return out;
  }

  private compareAt(doc: unknown, real: unknown, at: string, whole: boolean, loose: boolean, out: string[]) {
    if (jsonType(doc) !== jsonType(real)) {
      out.push(`${at}: documented ${JSON.stringify(doc)}, got ${JSON.stringify(real)}`);
    } else if (Array.isArray(doc)) {
      const items = real as unknown[];
      if (doc.length !== items.length) out.push(`${at}: documented ${doc.length} items, got ${items.length}`);
      doc.forEach((item, i) => this.compareAt(item, items[i], `${at}[${i}]`, whole, loose, out));
    } else if (jsonType(doc) === 'object') {
      const [documented, fields] = [doc as JsonObject, real as JsonObject];
      for (const [key, value] of Object.entries(documented)) {
        if (!(key in fields)) out.push(`${at}.${key}: documented, missing`);
        else
          this.compareAt(value, fields[key], `${at}.${key}`, whole, loose || this.runSpecific.has(key), out);
      }
      if (whole)
        for (const key of Object.keys(fields))
          if (!(key in documented)) out.push(`${at}.${key}: not documented`);
    } else if (!loose && typeof doc === 'string') {
      const problem = this.compareString(doc, real as string, at);
      if (problem) out.push(`${at}: ${problem}`);
    } else if (!loose && doc !== real) {
      out.push(`${at}: documented ${JSON.stringify(doc)}, got ${JSON.stringify(real)}`);
    }
  }

  private compareString(doc: string, real: string, at: string): string | undefined {
    const id = isIdPath(at) ? ID.exec(doc) : null;
    if (id) {
      if (!real.startsWith(`${id[1]}_`)) return `documented an id ${doc}, got ${real}`;
      if (doc.endsWith('...')) return undefined;
      const learned = this.#known.get(doc);
      if (learned === undefined) {
        const taken = [...this.#known].find(([, r]) => r === real);
        if (taken) return `documented ${doc}, got ${real}, which the page calls ${taken[0]}`;
        this.#known.set(doc, real);
        return undefined;
      }
      return learned === real ? undefined : `documented ${doc} (${learned} here), got ${real}`;
    }
    if (ISO_TIME.test(doc)) return ISO_TIME.test(real) ? undefined : `documented a time, got ${real}`;
    const expected = this.substitute(doc);
    if (expected.includes('...')) {
      const pattern = expected.split('...').map(escapeRegExp).join('.*');
      return new RegExp(`^${pattern}$`, 's').test(real) ? undefined : `documented ${doc}, got ${real}`;
    }
    return expected === real ? undefined : `documented ${JSON.stringify(doc)}, got ${JSON.stringify(real)}`;
  }

  /** Compares a documented JSON answer (text with `...` elisions) with a real one. */
  checkJson(docText: string, answer: DocAnswer, status: number | undefined): string[] {
    const { value, elided } = parseElidedJson(docText);
    const problems: string[] = [];
    const expected = status ?? expectedStatus(value);
    if (answer.status !== expected) problems.push(`status: documented ${expected}, got ${answer.status}`);
    let real: unknown;
    try {
      real = JSON.parse(answer.text);
    } catch {
      return [...problems, `not JSON: ${answer.text.slice(0, 200)}`];
    }
    return [...problems, ...this.compare(value, real, !elided)];
  }
}

function jsonType(value: unknown): string {
  return value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value;
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** An error envelope's status is its code's; any other documented answer is a success. */
export function expectedStatus(doc: unknown): number {
  const envelope = doc as { type?: string; error?: { details?: { error_code?: ErrorCode } } } | null;
  const code = envelope?.type === 'error' ? envelope.error?.details?.error_code : undefined;
  return code && code in ERROR_CODES ? ERROR_CODES[code].status : 200;
}
