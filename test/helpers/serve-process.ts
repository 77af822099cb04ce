/**
 * `berth serve` as an operator runs it: a child process of `bin/berth.js` (so `dist/`), on a free port,
 * with the environment given and nothing else of the test's. `killServeProcesses` is the cleanup of a
 * test that failed midway: it SIGKILLs every server it started and then every agent process those
 * servers left under their data dirs (a SIGKILLed server cannot end them itself).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import type { ApiEvent } from './api-events.js';
import { markedProcessesUnder } from './processes.js';

const BIN = path.resolve('bin/berth.js');

export interface ServeProcess {
  child: ChildProcess;
  /** stdout and stderr so far, interleaved. */
  output: string;
  /**
   * The exit code (null when a signal ended it), once its output has all arrived too (or 2 s after the
   * exit, should a grandchild hold the pipes): the last log lines are written just before the exit.
   */
  exit: Promise<number | null>;
  url: string;
}

const started: { server: ServeProcess; dataDir: string }[] = [];

function exitWithOutput(child: ChildProcess): Promise<number | null> {
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  return new Promise((resolve) => {
    child.once('exit', (code) => {
      const bound = new Promise<void>((r) => setTimeout(r, 2_000).unref());
      void Promise.race([closed, bound]).then(() => resolve(code));
    });
  });
}

/** Starts `berth serve --port 0 --data-dir DATA_DIR --model-endpoint URL ...args`; resolves once it listens. */
export async function serveProcess(
  dataDir: string,
  modelUrl: string,
  { args = [], env = {} }: { args?: string[]; env?: Record<string, string> } = {},
): Promise<ServeProcess> {
  const child = spawn(
    process.execPath,
    [BIN, 'serve', '--port', '0', '--data-dir', dataDir, '--model-endpoint', modelUrl, ...args],
    {
      env: {
        PATH: process.env.PATH,
        HOME: dataDir,
        BERTH_WARM_POOL: '0',
        BERTH_DRAIN_TIMEOUT: '20s',
        BERTH_KILL_GRACE: '1s',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const server: ServeProcess = {
    child,
    output: '',
    exit: exitWithOutput(child),
    url: '',
  };
  started.push({ server, dataDir });
  child.stdout?.on('data', (c: Buffer) => (server.output += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (server.output += c.toString()));
  const deadline = Date.now() + 30_000;
  for (;;) {
    const match = /listening on (http:\/\/[\d.:]+)/.exec(server.output);
    if (match) {
      server.url = match[1]!;
      return server;
    }
    if (child.exitCode !== null || Date.now() > deadline)
      throw new Error(`serve did not start:\n${server.output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** SIGKILLs every server `serveProcess` started that still runs, then every agent process they left. */
export async function killServeProcesses(): Promise<void> {
  for (const { server } of started) {
    if (server.child.exitCode === null && server.child.signalCode === null) server.child.kill('SIGKILL');
  }
  await Promise.all(started.map(({ server }) => server.exit));
  for (const dataDir of new Set(started.map((s) => s.dataDir))) {
    for (const p of await markedProcessesUnder(dataDir)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
  started.length = 0;
}

/** Resolves to what `promise` does, or rejects once `ms` have passed: a hang bound, never a timing claim. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, bound]);
  } finally {
    clearTimeout(timer);
  }
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- tests read response bodies loosely
type Loose = any;

export async function api(
  base: string,
  method: string,
  route: string,
  body?: unknown,
): Promise<{ status: number; body: Loose }> {
  const res = await fetch(`${base}${route}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** A session's events, oldest first. */
export async function history(base: string, id: string): Promise<ApiEvent[]> {
  return (await api(base, 'GET', `/v1/sessions/${id}/events?limit=1000`)).body.data as ApiEvent[];
}

/** Sends one user message; its stored seq. */
export async function sendText(base: string, id: string, text: string): Promise<number> {
  const sent = await api(base, 'POST', `/v1/sessions/${id}/events`, {
    events: [{ type: 'user.message', content: [{ type: 'text', text }] }],
  });
  if (sent.status !== 200) throw new Error(`send: ${sent.status} ${JSON.stringify(sent.body)}`);
  return (sent.body.data as { seq: number }[])[0]!.seq;
}
