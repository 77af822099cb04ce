/**
 * `GET /console`: the web console, static files from the package's top-level `console/` directory (plain
 * HTML, CSS and ES modules; no build step). The files need no API key: the console asks for one and sends
 * it with each API call it makes.
 *
 * Layout: `console/index.html` is served for `/console` and `/console/`; every other file of the directory
 * is served at `/console/<its relative path>`. The directory is listed once, at the first request, and a
 * request path is only ever looked up in that list, never joined to a file system path: `..`, an encoded
 * slash, a symlink or a file added later are all simply not in it (404). A file's bytes are read when it is
 * asked for, so an edited file is served as edited.
 */
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Hono } from 'hono';
import { BerthError } from '../errors.js';
import type { Env } from './route-group.js';

export interface ConsoleRoutesOptions {
  /** The directory of the console's files. @default the package's `console/` (from src/http or dist/http) */
  dir?: string;
}

/** What the browser may do on a console page: load its own files and call its own origin, nothing inline. */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

/** The console's files by their path under `/console/` (`/`-separated), each with its path on disk. */
async function listFiles(dir: string): Promise<Map<string, string>> {
  const files = new Map<string, string>();
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch {
    return files; // no console shipped: every console path is a 404
  }
  for (const entry of entries) {
    // Regular files only: a symlink could point out of the directory.
    if (!entry.isFile()) continue;
    const full = path.join(entry.parentPath, entry.name);
    const rel = path.relative(dir, full).split(path.sep).join('/');
    if (CONTENT_TYPES[path.extname(rel)] !== undefined) files.set(rel, full);
  }
  return files;
}

/** The console's routes; registered before auth applies to `/v1`, and outside it. */
export function consoleRoutes(options: ConsoleRoutesOptions = {}): { register(app: Hono<Env>): void } {
  const dir = options.dir ?? fileURLToPath(new URL('../../console/', import.meta.url));
  let listing: Promise<Map<string, string>> | undefined;

  const serve = async (requestPath: string): Promise<Response> => {
    // The raw path, percent-decoded once; only ever compared with the listing.
    let rel: string;
    try {
      rel = decodeURIComponent(requestPath.replace(/^\/console\/?/, ''));
    } catch {
      rel = '\0';
    }
    if (rel === '') rel = 'index.html';
    listing ??= listFiles(dir);
    const full = (await listing).get(rel);
    if (full === undefined) throw new BerthError('not_found', 'No such console file');
    const body = await readFile(full).catch(() => {
      throw new BerthError('not_found', 'No such console file');
    });
    return new Response(new Uint8Array(body), {
      status: 200,
      headers: {
        'content-type': CONTENT_TYPES[path.extname(rel)]!,
        'content-security-policy': CONSOLE_CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        // Revalidated each time: a server upgrade must not leave a tab running stale modules.
        'cache-control': 'no-cache',
      },
    });
  };

  return {
    register(app) {
      app.get('/console', (c) => serve(new URL(c.req.url).pathname));
      app.get('/console/*', (c) => serve(new URL(c.req.url).pathname));
    },
  };
}
