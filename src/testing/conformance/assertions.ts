/**
 * The few assertions the conformance cases need beyond `node:assert/strict`, each failing with an
 * `AssertionError` whose message says what was checked and where the values differ, kept short even when
 * the values are 10,000 entries or 1 MiB strings.
 */
import { AssertionError } from 'node:assert/strict';
import { inspect, isDeepStrictEqual } from 'node:util';
import { isBerthError } from '../../errors.js';
import type { ErrorCode } from '../../errors.js';

/**
 * Asserts that `actual` deep-equals `expected` as JSON data does: key order is free (as in
 * `assert.deepStrictEqual`), and a property whose value is `undefined` counts as absent, since a store
 * that serializes entries cannot keep it.
 */
export function assertSame(actual: unknown, expected: unknown, what: string): void {
  const a = withoutUndefined(actual);
  const e = withoutUndefined(expected);
  if (isDeepStrictEqual(a, e)) return;
  throw new AssertionError({
    message: `${what}: ${firstDifference(a, e, '') ?? 'the values differ in type'}`,
    actual,
    expected,
    // Not 'deepStrictEqual', for which node appends a full diff: unbounded for 10,000 entries.
    operator: 'same',
  });
}

/**
 * Asserts that `actual` has every property of `expected` with a matching value, recursively for plain
 * objects (other properties may be present); arrays and other values must be the same.
 */
export function assertMatches(actual: unknown, expected: Record<string, unknown>, what: string): void {
  const mismatch = subsetDifference(withoutUndefined(actual), withoutUndefined(expected), '');
  if (mismatch === undefined) return;
  throw new AssertionError({ message: `${what}: ${mismatch}`, actual, expected, operator: 'matches' });
}

/** Asserts that `promise` rejects with a `BerthError` of `code`. */
export async function assertRejectsWithCode(
  promise: Promise<unknown>,
  code: ErrorCode,
  what: string,
): Promise<void> {
  let error: unknown;
  try {
    await promise;
  } catch (err) {
    error = err;
  }
  if (error === undefined) {
    throw new AssertionError({
      message: `${what}: resolved; expected a BerthError ${code}`,
      operator: 'rejects',
    });
  }
  if (!isBerthError(error, code)) {
    throw new AssertionError({
      message: `${what}: rejected with ${short(error)}; expected a BerthError ${code}`,
      actual: error,
      operator: 'rejects',
    });
  }
}

/** A signal that has already fired, as a caller that gave up passes it (for the cancellation cases). */
export function firedSignal(): AbortSignal {
  const controller = new AbortController();
  controller.abort(new Error('the caller gave up'));
  return controller.signal;
}

/** Asserts that `actual` is at least `min`. */
export function assertAtLeast(actual: number, min: number, what: string): void {
  if (!(actual >= min)) {
    throw new AssertionError({
      message: `${what}: ${actual} < ${min}`,
      actual,
      expected: min,
      operator: '>=',
    });
  }
}

/** Asserts that `actual` is strictly between `low` and `high`. */
export function assertBetween(actual: number, low: number, high: number, what: string): void {
  if (!(actual > low && actual < high)) {
    throw new AssertionError({
      message: `${what}: ${actual} is not between ${low} and ${high}`,
      actual,
      operator: 'between',
    });
  }
}

/** A copy of `value` without the properties whose value is `undefined`, at any depth. */
function withoutUndefined(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(withoutUndefined);
  if (isPlainObject(value)) {
    const copy: Record<string, unknown> = {};
    for (const [key, item] of Object.entries(value))
      if (item !== undefined) copy[key] = withoutUndefined(item);
    return copy;
  }
  return value;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Where `a` and `b` first differ (`at PATH: got X, expected Y`), or undefined where none is seen. */
function firstDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (Object.is(a, b)) return undefined;
  const at = path === '' ? '' : `at ${path}: `;
  if (Array.isArray(a) && Array.isArray(b)) {
    let found: string | undefined;
    for (let i = 0; i < Math.min(a.length, b.length) && !found; i++) {
      found = firstDifference(a[i], b[i], `${path}[${i}]`);
    }
    // Counts first: "got 9 items, expected 4" says more about a lost or repeated entry than item 2 does.
    if (a.length !== b.length) {
      return `${at}got ${a.length} items, expected ${b.length}${found ? `; first difference ${found}` : ''}`;
    }
    return found;
  }
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const key of Object.keys(b)) {
      if (!Object.hasOwn(a, key)) return `${at}${JSON.stringify(key)} is missing (expected ${short(b[key])})`;
      const found = firstDifference(a[key], b[key], `${path}.${key}`);
      if (found) return found;
    }
    for (const key of Object.keys(a)) {
      if (!Object.hasOwn(b, key)) return `${at}unexpected ${JSON.stringify(key)}: ${short(a[key])}`;
    }
    return undefined;
  }
  return `${at}got ${short(a)}, expected ${short(b)}`;
}

function subsetDifference(a: unknown, b: unknown, path: string): string | undefined {
  if (isPlainObject(a) && isPlainObject(b)) {
    for (const key of Object.keys(b)) {
      const at = path === '' ? key : `${path}.${key}`;
      if (!Object.hasOwn(a, key)) return `at ${at}: missing (expected ${short(b[key])})`;
      const found = subsetDifference(a[key], b[key], at);
      if (found) return found;
    }
    return undefined;
  }
  if (isDeepStrictEqual(a, b)) return undefined;
  return firstDifference(a, b, path) ?? `at ${path}: the values differ in type`;
}

/** A one-line description of a value, at most about 200 characters. */
function short(value: unknown): string {
  const text = inspect(value, { depth: 3, breakLength: Infinity, maxArrayLength: 5, maxStringLength: 120 });
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}
