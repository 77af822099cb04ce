/**
 * The page cursor of the registry and the catalog, the same for every backend: base64url of
 * `createdAt:id`, the keyset position of the last record of a page (pages are newest first, ties broken
 * by id).
 */
import { BerthError } from '../errors.js';

/** One page of a listing. */
export interface ListPage<T> {
  data: T[];
  /** Opaque cursor for the next page, or null when this was the last. */
  next: string | null;
}

export interface CursorPosition {
  createdAt: number;
  id: string;
}

/** The largest createdAt a cursor holds: 15 digits, a safe integer (the year 33658 in epoch ms). */
export const MAX_CREATED_AT = 999_999_999_999_999;

export function encodeCursor(position: CursorPosition): string {
  return Buffer.from(`${position.createdAt}:${position.id}`, 'utf8').toString('base64url');
}

/** The position a cursor names; `invalid_request` for anything this module did not produce. */
export function decodeCursor(cursor: string): CursorPosition {
  const invalid = () => new BerthError('invalid_request', 'invalid pagination cursor');
  // Node's base64url decoder skips characters it does not know, so they are refused up front, and so is
  // anything that would not encode back to itself (padding, stray trailing bits).
  if (!/^[A-Za-z0-9_-]+$/.test(cursor)) throw invalid();
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (Buffer.from(text, 'utf8').toString('base64url') !== cursor) throw invalid();
  const match = /^(\d{1,15}):(.+)$/s.exec(text);
  if (!match?.[1] || match[2] === undefined) throw invalid();
  return { createdAt: Number(match[1]), id: match[2] };
}

/** `invalid_request` unless `limit` is a positive integer. */
export function checkPageLimit(limit: number): void {
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new BerthError('invalid_request', `limit must be a positive integer, got ${limit}`);
  }
}
