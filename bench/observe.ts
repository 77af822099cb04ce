/**
 * What observing Berth costs: two `berth serve` processes, both running the real `claude` CLI against
 * the same scripted model, one with everything on and one with everything off, measured in one run.
 *
 * - all on: JSON logs at `info` (stderr to a file), spans exported over OTLP/HTTP to a collector, and
 *   `/metrics` scraped once a second (Prometheus scrapes every 15 to 60 s; once a second makes the
 *   scrape's share visible). The collector and the scraper are one peer process of their own, as they
 *   would be: what they cost is not Berth's.
 * - all off: `--log-level silent`, no OTLP endpoint, no scrape. Counters and histograms cannot be turned
 *   off (prom-client's `inc` and `observe` on a registry nobody reads): both servers pay them.
 *
 * Each server is its own process, so tracing's context manager (AsyncLocalStorage, on every promise of
 * the process) is paid by the "on" server alone. The client (this process) drives both the same way:
 * (a) session start, interleaved off, on, off, ...; (b) per turn, one held-open session on each server
 * taking turns one at a time, first turns excluded.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMockModel } from '../src/testing/index.js';
import {
  alternate,
  api,
  assertNoSubprocessesUnder,
  createSession,
  describeMachine,
  idleAfter,
  machineLine,
  median,
  ms,
  now,
  postMessage,
  ratio,
  renderSections,
  signedMs,
  SseReader,
  statsRow,
  type Row,
  type Suite,
  type SuiteOptions,
  type SuiteReport,
} from './lib.js';

const START_ITERATIONS = 8;
/** Measured turns per session; each session runs one more (its first, which includes start-up). */
const TURNS = 30;
const ROUNDS = 4;
/** Targets (issue 13). */
const TURN_TARGET_MS = 2;
const START_TARGET_RATIO = 1.03;
const START_TIMEOUT_MS = 60_000;
const TURN_TIMEOUT_MS = 30_000;
const EXIT_GRACE_MS = 10_000;
const READY_TIMEOUT_MS = 30_000;
const SCRAPE_EVERY_MS = 1000;

const BERTH_BIN = fileURLToPath(new URL('../bin/berth.js', import.meta.url));

export const observe: Suite = { name: 'observe', run };

/**
 * The peer: an OTLP/HTTP collector that counts the spans it is sent, and a scraper of `SCRAPE_URL`.
 * `GET /stats` answers the counts. Plain JavaScript, run by `node -e`.
 */
const PEER = `
const http = require('node:http');
let spans = 0, scrapes = 0;
const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url === '/stats') {
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ spans, scrapes }));
    return;
  }
  const chunks = [];
  req.on('data', (c) => chunks.push(c));
  req.on('end', () => {
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}');
    for (const r of body.resourceSpans || []) for (const s of r.scopeSpans || []) spans += (s.spans || []).length;
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
  });
});
server.listen(Number(process.env.PEER_PORT), '127.0.0.1');
setInterval(() => {
  fetch(process.env.SCRAPE_URL).then((r) => r.text()).then(() => scrapes++, () => undefined);
}, Number(process.env.SCRAPE_EVERY_MS));
`;

/** A port free on 127.0.0.1 now (the servers are told their port, so that a silent one needs no log). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function untilUp(url: string, child: ChildProcess): Promise<void> {
  const deadline = now() + READY_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the server exited with ${child.exitCode}`);
    const up = await fetch(url).then(
      (res) => res.ok,
      () => false,
    );
    if (up) return;
    if (now() > deadline) throw new Error(`${url} did not answer within ${READY_TIMEOUT_MS} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Server {
  url: string;
  child: ChildProcess;
}

async function startServer(
  root: string,
  name: string,
  modelUrl: string,
  flags: string[],
  env: Record<string, string>,
): Promise<Server> {
  const port = await freePort();
  const logFd = openSync(path.join(root, `${name}.log`), 'w');
  const args = [
    BERTH_BIN,
    'serve',
    ...['--port', String(port), '--data-dir', path.join(root, name), '--model-endpoint', modelUrl],
    // Cold against cold, unconfined: as the core suite, so that only the observing differs.
    ...['--warm-pool', '0', '--sandbox', 'none', ...flags],
  ];
  const child = spawn(process.execPath, args, {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'ignore', logFd],
  });
  closeSync(logFd);
  const url = `http://127.0.0.1:${port}`;
  await untilUp(`${url}/healthz`, child);
  return { url, child };
}

async function stop(child: ChildProcess | undefined): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), EXIT_GRACE_MS);
  await exited;
  clearTimeout(timer);
}

async function run(options: SuiteOptions): Promise<SuiteReport> {
  const iterations = options.iterations ?? START_ITERATIONS;
  const machine = describeMachine();
  const root = await mkdtemp(path.join(os.tmpdir(), 'berth-bench-'));
  const model = await startMockModel();
  let off: Server | undefined;
  let on: Server | undefined;
  let peer: ChildProcess | undefined;
  let failure: unknown;
  let report: SuiteReport | undefined;
  try {
    const peerPort = await freePort();
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    off = await startServer(root, 'off', model.url, ['--log-level', 'silent'], {});
    on = await startServer(root, 'on', model.url, ['--log-format', 'json', '--log-level', 'info'], {
      OTEL_EXPORTER_OTLP_ENDPOINT: peerUrl,
    });
    peer = spawn(process.execPath, ['-e', PEER], {
      env: {
        PEER_PORT: String(peerPort),
        SCRAPE_URL: `${on.url}/metrics`,
        SCRAPE_EVERY_MS: String(SCRAPE_EVERY_MS),
      },
      stdio: 'ignore',
    });
    await untilUp(`${peerUrl}/stats`, peer);
    const servers = { off: off.url, on: on.url };
    const start = await measureStart(servers, root, iterations, options.log);
    const turns = await measureTurns(servers, options.log);
    // The last spans are flushed at the server's exit.
    await stop(on.child);
    const seen = (await api(peerUrl, 'GET', '/stats')) as { spans: number; scrapes: number };
    report = buildReport(machine, iterations, start, turns, seen);
  } catch (err) {
    failure = err;
  } finally {
    await stop(on?.child).catch((err: unknown) => (failure ??= err));
    await stop(off?.child).catch((err: unknown) => (failure ??= err));
    await stop(peer).catch((err: unknown) => (failure ??= err));
    await model.close().catch((err: unknown) => (failure ??= err));
    await assertNoSubprocessesUnder(root, EXIT_GRACE_MS).catch((err: unknown) => (failure ??= err));
    await rm(root, { recursive: true, force: true });
  }
  if (failure !== undefined || !report) throw failure;
  return report;
}

interface Pairs {
  off: number[];
  on: number[];
}

/** A session held open through the API: its event stream, and one message at a time. */
class Conversation {
  private constructor(
    private readonly base: string,
    private readonly id: string,
    private readonly sse: SseReader,
  ) {}

  static async open(base: string): Promise<Conversation> {
    const id = await createSession(base);
    return new Conversation(base, id, await SseReader.open(`${base}/v1/sessions/${id}/events/stream`));
  }

  /** POST user.message -> its `status_idle` on the stream, in ms. */
  async turn(content: string, timeoutMs: number): Promise<number> {
    const began = now();
    const seq = await postMessage(this.base, this.id, content);
    return (await idleAfter(this.sse, seq, timeoutMs)) - began;
  }

  async close(): Promise<void> {
    this.sse.close();
    await api(this.base, 'DELETE', `/v1/sessions/${this.id}`);
  }
}

/** Create, stream, first message -> `status_idle`: a cold session start, in ms. */
async function startOnce(base: string): Promise<number> {
  await createSession(base); // the agent and environment, made once per server, are not timed
  const began = now();
  const conversation = await Conversation.open(base);
  try {
    await conversation.turn('hello', START_TIMEOUT_MS);
    return now() - began;
  } finally {
    await conversation.close();
  }
}

async function measureStart(
  servers: { off: string; on: string },
  root: string,
  iterations: number,
  log: (line: string) => void,
): Promise<Pairs> {
  const results: Pairs = { off: [], on: [] };
  for (let i = 0; i <= iterations; i++) {
    const [off, on] = await alternate(
      i,
      () => startOnce(servers.off),
      () => startOnce(servers.on),
    );
    await assertNoSubprocessesUnder(root, EXIT_GRACE_MS);
    log(`  start ${i === 0 ? 'warm-up' : `${i}/${iterations}`}: off ${ms(off)} ms, on ${ms(on)} ms`);
    if (i === 0) continue;
    results.off.push(off);
    results.on.push(on);
  }
  return results;
}

async function measureTurns(
  servers: { off: string; on: string },
  log: (line: string) => void,
): Promise<Pairs> {
  const results: Pairs = { off: [], on: [] };
  for (let round = 0; round < ROUNDS; round++) {
    const off = await Conversation.open(servers.off);
    const on = await Conversation.open(servers.on);
    try {
      for (let i = 0; i <= TURNS; i++) {
        const timeout = i === 0 ? START_TIMEOUT_MS : TURN_TIMEOUT_MS;
        const [a, b] = await alternate(
          i,
          () => off.turn(`turn ${i}`, timeout),
          () => on.turn(`turn ${i}`, timeout),
        );
        if (i === 0) continue;
        results.off.push(a);
        results.on.push(b);
      }
    } finally {
      await off.close();
      await on.close();
    }
    log(`  turns ${round + 1}/${ROUNDS}: off ${ms(median(results.off))} ms, on ${ms(median(results.on))} ms`);
  }
  return results;
}

function buildReport(
  machine: ReturnType<typeof describeMachine>,
  iterations: number,
  start: Pairs,
  turns: Pairs,
  seen: { spans: number; scrapes: number },
): SuiteReport {
  const startRatio = median(start.on) / median(start.off);
  const turnDiff = median(turns.on) - median(turns.off);
  const pairedDiff = median(turns.on.map((t, i) => t - turns.off[i]!));
  const header: Row = ['', 'n', 'median ms', 'p90 ms', 'max ms'];
  const turnPass = turnDiff <= TURN_TARGET_MS;
  const startPass = startRatio <= START_TARGET_RATIO;
  const { text, markdown } = renderSections(
    'Observe: logs, metrics and traces on against all off',
    [
      `Measured on ${machineLine(machine)}. Source: \`bench/observe.ts\`.`,
      'Two `berth serve` processes, unconfined and without a warm pool, driven alike through the API. ' +
        '"All on": `--log-format json --log-level info` (stderr to a file), spans to a collector ' +
        '(`OTEL_EXPORTER_OTLP_ENDPOINT`), `/metrics` scraped every second; the collector and scraper are a ' +
        'process of their own. "All off": `--log-level silent`, no endpoint, no scrape (counters are still ' +
        `counted: they cannot be turned off). This run exported ${seen.spans} spans and answered ` +
        `${seen.scrapes} scrapes.`,
    ],
    [
      [
        `Session start (${iterations} of each, interleaved, after 1 warm-up each)`,
        header,
        [
          statsRow('all off: create, stream, message -> status_idle', start.off),
          statsRow('all on: create, stream, message -> status_idle', start.on),
        ],
        '',
      ],
      [
        `Per turn (${ROUNDS} x ${TURNS} turns of each, alternating, first turns excluded)`,
        header,
        [
          statsRow('all off: POST user.message -> status_idle on SSE', turns.off),
          statsRow('all on: POST user.message -> status_idle on SSE', turns.on),
        ],
        '',
      ],
      [
        'Targets',
        ['target', 'measured', ''],
        [
          [
            `per-turn overhead <= ${TURN_TARGET_MS} ms (median)`,
            `${signedMs(turnDiff)} ms; paired turns: ${signedMs(pairedDiff)} ms`,
            turnPass ? 'pass' : 'MISS',
          ],
          [
            `session start <= ${START_TARGET_RATIO}x all off (median)`,
            ratio(startRatio),
            startPass ? 'pass' : 'MISS',
          ],
        ],
        '',
      ],
    ],
  );
  return {
    text,
    markdown,
    raw: {
      machine,
      start: { ...start, ratio: startRatio },
      turns: { ...turns, differenceMs: turnDiff },
      seen,
    },
    missed: [
      ...(turnPass ? [] : ['observe per-turn overhead']),
      ...(startPass ? [] : ['observe start ratio']),
    ],
  };
}
