/**
 * Helpers shared by the benchmark suites: timing, statistics, tables, the machine description, an SSE
 * reader that timestamps each event on arrival, and the check that no subprocess outlived a suite.
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SDKMessage, SessionStoreEntry } from '@anthropic-ai/claude-agent-sdk';
import type { HostInfo } from '../src/host/session-host.js';

/** What a suite gives back to `bench/run.ts`. */
export interface SuiteReport {
  /** Printed to stdout. */
  text: string;
  /** The suite's section of docs/benchmarks.md (between its markers). */
  markdown: string;
  /** Written as JSON to bench/results/. */
  raw: unknown;
  /** Targets the run missed, by name; reported, they do not fail the run. */
  missed: string[];
}

export interface SuiteOptions {
  /** Measured iterations per kind, when the caller overrides the suite's default. */
  iterations: number | undefined;
  /** Progress lines (stderr), so that stdout keeps only the results. */
  log: (line: string) => void;
}

export interface Suite {
  /** Used by `--only`, in file names and in the doc's markers. */
  name: string;
  run(options: SuiteOptions): Promise<SuiteReport>;
}

// ---- timing and statistics ----------------------------------------------------------------------------

export const now = (): number => performance.now();

export interface Timing {
  /** Wall time. */
  ms: number;
  /**
   * CPU time this process used meanwhile (user + system, all its threads): the Node-side cost, which
   * a latency hides when it overlaps the subprocess's own work. Not the event loop's busy time, which
   * on a loaded machine also counts the time the thread waits for a CPU inside a system call.
   */
  cpuMs: number;
}

/** Starts a stopwatch; calling the result reads it. */
export function stopwatch(): () => Timing {
  const start = now();
  const cpu = process.cpuUsage();
  return () => {
    const used = process.cpuUsage(cpu);
    return { ms: now() - start, cpuMs: (used.user + used.system) / 1000 };
  };
}

/** Rejects with a message naming `what` if `promise` has not settled within `ms`. */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  const timeout = new AbortController();
  try {
    return await Promise.race([
      promise,
      sleep(ms, undefined, { signal: timeout.signal }).then(() => {
        throw new Error(`${what} took more than ${ms} ms`);
      }),
    ]);
  } finally {
    timeout.abort();
  }
}

/** The p-th percentile (0-100), interpolating linearly between the closest ranks. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = (p / 100) * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return sorted[low]! + (sorted[high]! - sorted[low]!) * (rank - low);
}

export const median = (values: readonly number[]): number => percentile(values, 50);

export interface Summary {
  n: number;
  median: number;
  p90: number;
  min: number;
  max: number;
}

export function summarize(values: readonly number[]): Summary {
  return {
    n: values.length,
    median: median(values),
    p90: percentile(values, 90),
    min: Math.min(...values),
    max: Math.max(...values),
  };
}

// ---- formatting ---------------------------------------------------------------------------------------

/** `1234.5` -> `1235`, `12.345` -> `12.3`, `0.4567` -> `0.457`: three significant digits, at most. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return '-';
  const abs = Math.abs(value);
  return value.toFixed(abs >= 100 ? 0 : abs >= 10 ? 1 : abs >= 1 ? 2 : 3);
}

export const ratio = (value: number): string => (Number.isFinite(value) ? `${value.toFixed(2)}x` : '-');

export type Row = readonly string[];

/** A table with aligned columns, for a terminal. */
export function textTable(header: Row, rows: readonly Row[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: Row): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The same table in Markdown, numbers right-aligned. */
export function markdownTable(header: Row, rows: readonly Row[]): string {
  const line = (cells: Row): string => `| ${cells.join(' | ')} |`;
  const rule = `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`;
  return [line(header), rule, ...rows.map(line)].join('\n');
}

// ---- the machine --------------------------------------------------------------------------------------

export interface Machine {
  cpus: number;
  memoryGiB: number;
  node: string;
  sdk: string;
  date: string;
}

export function describeMachine(): Machine {
  let cpus = os.availableParallelism();
  try {
    cpus = Number(execFileSync('nproc', { encoding: 'utf8' }).trim()) || cpus;
  } catch {
    // no coreutils: the CPUs Node may use is the same number
  }
  const sdkPackage = new URL('../node_modules/@anthropic-ai/claude-agent-sdk/package.json', import.meta.url);
  const sdk = (JSON.parse(readFileSync(sdkPackage, 'utf8')) as { version: string }).version;
  return {
    cpus,
    memoryGiB: Math.round((os.totalmem() / 1024 ** 3) * 10) / 10,
    node: process.version,
    sdk,
    date: new Date().toISOString(),
  };
}

export function machineLine(m: Machine): string {
  return (
    `${m.cpus} CPUs, ${m.memoryGiB} GiB RAM, Node ${m.node}, ` +
    `@anthropic-ai/claude-agent-sdk ${m.sdk}, ${m.date.slice(0, 10)}`
  );
}

// ---- SSE ----------------------------------------------------------------------------------------------

export interface TimedSseEvent {
  type: string;
  /** The parsed `data:` of the frame. */
  data: Record<string, unknown>;
  /** `performance.now()` when the frame had arrived. */
  at: number;
}

/**
 * Reads one SSE stream and queues its events, each stamped with its arrival time. `next()` consumes the
 * queue in order, so a waiter never sees an event twice.
 */
export class SseReader {
  private readonly queue: TimedSseEvent[] = [];
  private wake: (() => void) | undefined;
  private ended: Error | undefined;
  private readonly controller = new AbortController();

  private constructor() {}

  /** Resolves once the response headers arrived, i.e. the server has subscribed this client. */
  static async open(url: string): Promise<SseReader> {
    const reader = new SseReader();
    const res = await fetch(url, {
      headers: { accept: 'text/event-stream' },
      signal: reader.controller.signal,
    });
    if (res.status !== 200 || !res.body) throw new Error(`GET ${url}: ${res.status}`);
    void reader.read(res.body);
    return reader;
  }

  private async read(body: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for await (const chunk of body) {
        const at = now();
        buffer += decoder.decode(chunk, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          this.parse(buffer.slice(0, end), at);
          buffer = buffer.slice(end + 2);
        }
      }
      this.ended = new Error('the SSE stream ended');
    } catch (err) {
      this.ended = err instanceof Error ? err : new Error(String(err));
    }
    this.wake?.();
  }

  private parse(block: string, at: number): void {
    let type: string | undefined;
    const data: string[] = [];
    for (const line of block.split('\n')) {
      if (line.startsWith('event:')) type = line.slice(6).trim();
      else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
    }
    if (type === undefined) return; // a heartbeat comment
    this.queue.push({ type, data: JSON.parse(data.join('\n')) as Record<string, unknown>, at });
    this.wake?.();
  }

  /** The next event for which `match` holds; the events before it are dropped. */
  async next(match: (e: TimedSseEvent) => boolean, timeoutMs: number): Promise<TimedSseEvent> {
    const deadline = now() + timeoutMs;
    for (;;) {
      for (let e = this.queue.shift(); e; e = this.queue.shift()) if (match(e)) return e;
      if (this.ended) throw this.ended;
      const left = deadline - now();
      if (left <= 0) throw new Error(`no matching SSE event within ${timeoutMs} ms`);
      await withTimeout(
        new Promise<void>((resolve) => (this.wake = resolve)),
        left,
        'waiting for an SSE event',
      ).finally(() => (this.wake = undefined));
    }
  }

  close(): void {
    this.controller.abort();
  }
}

// ---- leftovers ----------------------------------------------------------------------------------------

/** Processes whose environment has a variable `NAME=VALUE` where VALUE contains `fragment`. */
export async function processesWithEnv(name: string, fragment: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
      if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) continue; // a zombie is already dead
      const env = (await readFile(`/proc/${pid}/environ`, 'latin1')).split('\0');
      if (!env.some((v) => v.startsWith(`${name}=`) && v.includes(fragment))) continue;
      const cmdline = (await readFile(`/proc/${pid}/cmdline`, 'utf8')).replaceAll('\0', ' ').trim();
      found.push(`${pid} ${cmdline.slice(0, 160)}`);
    } catch {
      // gone meanwhile, or not ours to read
    }
  }
  return found;
}

/** Kills (SIGKILL, by pid) the processes {@link processesWithEnv} finds; resolves to how many. */
export async function killProcessesWithEnv(name: string, fragment: string): Promise<number> {
  const found = await processesWithEnv(name, fragment);
  for (const line of found) {
    try {
      process.kill(Number(line.split(' ')[0]), 'SIGKILL');
    } catch {
      // gone meanwhile
    }
  }
  return found.length;
}

/**
 * Waits up to `graceMs` for every process whose `CLAUDE_CONFIG_DIR` lies under `dir` to exit; throws,
 * listing them, if any is left. Subprocesses end with a grace period, hence the wait.
 */
export async function assertNoSubprocessesUnder(dir: string, graceMs = 5000): Promise<void> {
  const deadline = now() + graceMs;
  let left = await processesWithEnv('CLAUDE_CONFIG_DIR', dir);
  while (left.length > 0 && now() < deadline) {
    await sleep(100);
    left = await processesWithEnv('CLAUDE_CONFIG_DIR', dir);
  }
  if (left.length > 0) {
    throw new Error(`${left.length} subprocess(es) outlived the benchmark:\n  ${left.join('\n  ')}`);
  }
}

/** A JSON request to a Berth server; throws with the status and body when it is not 2xx. */
export async function api(base: string, method: string, route: string, body?: unknown): Promise<unknown> {
  const res = await fetch(`${base}${route}`, {
    method,
    ...(body !== undefined && {
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
    }),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text.slice(0, 300)}`);
  return text === '' ? undefined : (JSON.parse(text) as unknown);
}

/** A `user.message` event as the API takes it: the text as one block. */
export function userMessage(text: string): {
  type: 'user.message';
  content: [{ type: 'text'; text: string }];
} {
  return { type: 'user.message', content: [{ type: 'text', text }] };
}

/** What a bench session runs: every toolset tool, none asking (as the bare SDK session runs them). */
export interface BenchAgent {
  /** Environment pattern (Berth's addition); the host's `--pattern` when absent. */
  pattern?: 'long-running' | 'hybrid' | 'ephemeral';
  /** Extra session fields (`id`, `title`). */
  session?: Record<string, unknown>;
}

const agentsMade = new Map<string, Promise<{ agent: string; environment_id: string }>>();

/**
 * The body of `POST /v1/sessions` at `base`: an agent and an environment made once per server and
 * pattern, so that a measured session start is the session's alone.
 */
export async function sessionBody(base: string, spec: BenchAgent = {}): Promise<Record<string, unknown>> {
  const key = `${base} ${spec.pattern ?? ''}`;
  let made = agentsMade.get(key);
  if (!made) {
    made = (async () => {
      const agent = (await api(base, 'POST', '/v1/agents', {
        name: 'bench',
        model: 'claude-sonnet-4-5',
        tools: [
          { type: 'agent_toolset_20260401', default_config: { permission_policy: { type: 'always_allow' } } },
        ],
      })) as { id: string };
      const config = { type: 'cloud', ...(spec.pattern && { pattern: spec.pattern }) };
      const environment = (await api(base, 'POST', '/v1/environments', { name: 'bench', config })) as {
        id: string;
      };
      return { agent: agent.id, environment_id: environment.id };
    })();
    made.catch(() => agentsMade.delete(key));
    agentsMade.set(key, made);
  }
  return { ...(await made), ...spec.session };
}

/** Creates a session at `base` (its agent and environment made once); resolves to its id. */
export async function createSession(base: string, spec: BenchAgent = {}): Promise<string> {
  return ((await api(base, 'POST', '/v1/sessions', await sessionBody(base, spec))) as { id: string }).id;
}

/** A table row of a sample's count, median, p90 and max in milliseconds. */
export function statsRow(label: string, values: readonly number[]): Row {
  const s = summarize(values);
  return [label, String(s.n), ms(s.median), ms(s.p90), ms(s.max)];
}

/**
 * Runs `a` and `b` one after the other: `a` first in even rounds, `b` first in odd ones, so that neither
 * always runs on the warmer (or the more loaded) machine. Resolves to both results.
 */
export async function alternate<A, B>(
  round: number,
  a: () => Promise<A>,
  b: () => Promise<B>,
): Promise<[A, B]> {
  if (round % 2 === 0) {
    const first = await a();
    return [first, await b()];
  }
  const first = await b();
  return [await a(), first];
}

/** A difference in milliseconds with its sign. */
export const signedMs = (value: number): string => `${value >= 0 ? '+' : ''}${ms(value)}`;

/** Polls until `check` holds; the bound only keeps a failure from hanging. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string,
  boundMs: number,
): Promise<void> {
  const deadline = now() + boundMs;
  while (!(await check())) {
    if (now() > deadline) throw new Error(`timed out after ${boundMs} ms waiting for ${what}`);
    await sleep(20);
  }
}

/** Reads a query's messages up to the next `result`; throws unless it is a success. */
export async function untilResult(
  messages: AsyncIterator<SDKMessage>,
  what: string,
  timeoutMs: number,
): Promise<void> {
  for (;;) {
    const next = await withTimeout(messages.next(), timeoutMs, what);
    if (next.done) throw new Error(`${what}: the query ended before its result`);
    if (next.value.type !== 'result') continue;
    if (next.value.subtype !== 'success' || next.value.is_error) {
      throw new Error(`${what} failed: ${next.value.subtype}`);
    }
    return;
  }
}

/** What `GET /v1/hosts/self` answers. */
export const hostInfo = async (url: string): Promise<HostInfo> =>
  (await api(url, 'GET', '/v1/hosts/self')) as HostInfo;

/** A titled table with a paragraph under it (or none: `''`). */
export type Section = [title: string, header: Row, rows: readonly Row[], note: string];

/**
 * A suite's sections as text for stdout and as Markdown for its part of docs/benchmarks.md: the `heading`,
 * the `intro` paragraphs, then each section's title, table and note.
 */
export function renderSections(
  heading: string,
  intro: readonly string[],
  sections: readonly Section[],
): { text: string; markdown: string } {
  const text = [
    ...intro,
    ...sections.flatMap(([title, header, rows]) => ['', title, textTable(header, rows)]),
  ];
  const markdown = [`## ${heading}`, '', ...intro.flatMap((paragraph) => [paragraph, ''])];
  for (const [title, header, rows, note] of sections) {
    markdown.push(`### ${title}`, '', markdownTable(header, rows), '', ...(note ? [note, ''] : []));
  }
  return { text: text.join('\n'), markdown: markdown.join('\n') };
}

/** How long `work` took, in ms. */
export async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = now();
  await work();
  return now() - started;
}

/**
 * Runs `a` and `b` {@link alternate}ly for `1 + n` rounds and collects their results, the first round's
 * (a warm-up) left out.
 */
export async function pairs(
  n: number,
  a: () => Promise<number>,
  b: () => Promise<number>,
): Promise<[number[], number[]]> {
  const out: [number[], number[]] = [[], []];
  for (let i = 0; i <= n; i++) {
    const [x, y] = await alternate(i, a, b);
    if (i === 0) continue;
    out[0].push(x);
    out[1].push(y);
  }
  return out;
}

/**
 * `n` transcript-shaped entries of ~740 bytes of JSON: user and assistant lines alternating, chained by
 * `parentUuid` like the CLI's.
 */
export function transcriptEntries(sessionId: string, n: number): SessionStoreEntry[] {
  let parentUuid: string | null = null;
  return Array.from({ length: n }, (_, i) => {
    const uuid = randomUUID();
    const role = i % 2 === 0 ? 'user' : 'assistant';
    const text = `${role} line ${i}: ${'the lockfile pins a version the registry no longer serves; '.repeat(6)}`;
    const entry = {
      ...{ type: role, uuid, parentUuid, sessionId, isSidechain: false, userType: 'external' },
      ...{ cwd: '/srv/berth/workspaces/default/sess_bench', version: '2.1.330', gitBranch: 'HEAD' },
      timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, 0, i * 250)).toISOString(),
      message: { role, content: [{ type: 'text', text }] },
    };
    parentUuid = uuid;
    return entry;
  });
}

/**
 * POSTs a `user.message` to a session; resolves to its seq. A 503 or 409 (a session between hosts) is
 * retried every 50 ms for `retryMs`.
 */
export async function postMessage(base: string, id: string, content: string, retryMs = 0): Promise<number> {
  const deadline = now() + retryMs;
  for (;;) {
    const res = await fetch(`${base}/v1/sessions/${id}/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ events: [userMessage(content)] }),
    });
    const text = await res.text();
    if (res.status === 200) return (JSON.parse(text) as { data: Array<{ seq: number }> }).data[0]!.seq;
    if (![503, 409].includes(res.status) || now() > deadline) {
      throw new Error(`POST ${base}/v1/sessions/${id}/events: ${res.status} ${text.slice(0, 300)}`);
    }
    await sleep(50);
  }
}

/** When the `session.status_idle` of the turn after `seq` arrived on `reader`; throws unless it was `end_turn`. */
export async function idleAfter(reader: SseReader, seq: number, timeoutMs: number): Promise<number> {
  const idle = await reader.next(
    (e) => e.type === 'session.status_idle' && Number(e.data.seq) > seq,
    timeoutMs,
  );
  // A turn that failed must not pass for a fast one.
  const reason = (idle.data.stop_reason as { type?: string } | undefined)?.type;
  if (reason !== 'end_turn') throw new Error(`a turn ended with ${reason}`);
  return idle.at;
}
