/**
 * Every example of README.md, run as a newcomer would run it: `berth serve` on its defaults (the built-in
 * scripted model, the bwrap sandbox, an embedded store) as a child process, the quick start's curl commands
 * in order, Ctrl-C and a restart where the prose says so, the official client example as its own file,
 * `berth run`, `berth plan` and the library example. Built code: run `npm run build` first (`npm test` does).
 *
 * What a command shows is checked against what the README says it shows:
 * - `# -> JSON`: the answer, compared as docs/api.md's examples are (test/helpers/doc-compare.ts);
 * - `# -> text`: a command's output, line by line;
 * - `# stream: type (detail, ...), ...`: the events the session's stream got since the last such comment,
 *   exactly these types in this order; each detail must appear in its event.
 * `agent_...`, `env_...` and `sess_...` stand for the last one created, `sevt_...` for the tool use the
 * session waits on. A `user.interrupt` is sent once the turn before it runs its tool's command, as a
 * person watching it would. A block the walk does not run must be listed in SKIPPED with its reason.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent } from './helpers/api-events.js';
import { postgresBackend } from './helpers/backends.js';
import {
  parseBlocks,
  parseCurl,
  parseShell,
  type DocBlock,
  type ShellCommand,
} from './helpers/doc-blocks.js';
import { DocChecker } from './helpers/doc-compare.js';
import { TYPESCRIPT_STEP_MS, runBounded, runTypeScript } from './helpers/doc-run.js';
import { hostProcesses } from './helpers/processes.js';
import { SseClient } from './helpers/sse.js';
import { eventually } from './helpers/wait.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const BIN = path.join(ROOT, 'bin/berth.js');
const README = 'README.md';
const BLOCKS = parseBlocks(readFileSync(path.join(ROOT, README), 'utf8'));
const DOC_HOST = 'localhost:8080';
const DOC_BASE_URL = 'http://127.0.0.1:8080';

/** Blocks the walk does not run, by a phrase of theirs, and why. */
const SKIPPED: Record<string, string> = {
  'npm install && npm start': '.ci/run runs the two commands on a fresh clone',
};

/** The agents' environment and the server's: no model key, so the built-in scripted model answers. */
function serverEnv(home: string): NodeJS.ProcessEnv {
  // TMPDIR: the run's temp root, so that what the commands make there is the run's to check and remove.
  return { PATH: process.env.PATH, HOME: home, TMPDIR: os.tmpdir(), BERTH_KILL_GRACE: '1s' };
}

interface Server {
  child: ChildProcess;
  dir: string;
  url: string;
  log: string;
  exit: Promise<number | null>;
}

/** Every server the file started, for {@link stopAll}. */
const servers: Server[] = [];

/**
 * `berth serve` on its defaults in `dir` (`npm start` without the build), waiting for its first line. It
 * leads a process group of its own, so that nothing it started outlives the test.
 */
async function serve(dir: string): Promise<Server> {
  const child = spawn(process.execPath, [BIN, 'serve', '--port', '0'], {
    cwd: dir,
    env: serverEnv(dir),
    detached: true,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const server: Server = {
    child,
    dir,
    url: '',
    log: '',
    exit: new Promise((resolve) => child.on('exit', (code) => resolve(code))),
  };
  servers.push(server);
  const listening = /listening on (http:\/\/\S+?)"/;
  child.stderr.on('data', (chunk: Buffer) => (server.log += chunk.toString()));
  const started = eventually(() => listening.test(server.log), 'berth serve to listen', { boundMs: 30_000 });
  const exited = server.exit.then((code) => {
    throw new Error(`berth serve exited ${code}:\n${server.log}`);
  });
  try {
    await Promise.race([started, exited]);
  } catch (err) {
    await kill(server);
    throw err;
  }
  server.url = listening.exec(server.log)![1]!;
  return server;
}

/** SIGKILL to the server's group, and to every agent process under its data dir (sandboxes lead their own). */
async function kill(server: Server): Promise<void> {
  // The group only while its leader lives: a reaped leader's group id may belong to someone else by now.
  const alive = server.child.exitCode === null && server.child.signalCode === null;
  const pids = [
    ...(alive ? [-server.child.pid!] : []),
    ...(await hostProcesses(path.join(server.dir, '.berth'))),
  ];
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Ctrl-C: SIGINT, then the drain's exit code; a server that does not exit in time is killed. */
async function interrupt(server: Server): Promise<number | null> {
  server.child.kill('SIGINT');
  const timeout = new Promise<'hung'>((resolve) => setTimeout(resolve, 40_000, 'hung'));
  const code = await Promise.race([server.exit, timeout]);
  if (code === 'hung') {
    await kill(server);
    throw new Error(`berth serve did not exit on SIGINT:\n${server.log}`);
  }
  return code;
}

/** Kills what is left of every server (after a failed assertion), and waits for their agents to go. */
async function stopAll(): Promise<void> {
  for (const server of servers) await kill(server);
  for (const server of servers) {
    await eventually(
      async () => (await hostProcesses(path.join(server.dir, '.berth'))).length === 0,
      'the agents of a killed server to be gone',
      { boundMs: 10_000 },
    );
  }
}

/** One expected event of a `# stream:` comment. */
interface ExpectedEvent {
  type: string;
  details: string[];
}

const EVENT_ITEM = /[a-z_]+\.[a-z_.]+(?:\s*\([^)]*\))?/g;

/** The event items of a comment line, or null when the line holds anything else. */
function eventItems(line: string): string[] | null {
  const items = line.match(EVENT_ITEM) ?? [];
  return items.length > 0 && line.replace(EVENT_ITEM, '').replace(/[\s,]/g, '') === '' ? items : null;
}

/** `stream: a, b (x, y), c` and its continuation lines -> its events; null when there is no stream line. */
function streamComment(command: ShellCommand): ExpectedEvent[] | null {
  const at = command.comments.findIndex((c) => c.startsWith('stream:'));
  if (at < 0) return null;
  const items = eventItems(command.comments[at]!.slice('stream:'.length)) ?? [];
  for (const line of command.comments.slice(at + 1)) {
    const more = eventItems(line);
    if (!more) break;
    items.push(...more);
  }
  return items.map((item) => {
    const [, type, details] = /^([a-z_.]+)(?:\s*\(([^)]*)\))?$/.exec(item.trim())!;
    return { type: type!, details: details ? details.split(',').map((d) => d.trim()) : [] };
  });
}

/** What differs between the events a comment promises and the ones that came. */
function compareEvents(expected: ExpectedEvent[], events: ApiEvent[]): string[] {
  const got = events.map((e) => e.type);
  if (JSON.stringify(got) !== JSON.stringify(expected.map((e) => e.type))) {
    return [`stream: documented ${expected.map((e) => e.type).join(', ')}; got ${got.join(', ')}`];
  }
  const problems: string[] = [];
  expected.forEach((want, i) => {
    const text = JSON.stringify(events[i]);
    for (const detail of want.details)
      if (!text.includes(detail)) problems.push(`stream: ${want.type} does not mention ${detail}: ${text}`);
  });
  return problems;
}

/** The quick start's state: the server, the stream and the ids the README elides. */
class QuickStart {
  readonly checker = new DocChecker(new Set(['created_at', 'updated_at']));
  readonly latest = new Map<string, string>();
  stream: SseClient | undefined;
  streamRoute = '';
  /** How many stream events the last `# stream:` comment accounted for. */
  seen = 0;
  problems: string[] = [];

  constructor(
    public server: Server,
    readonly dir: string,
  ) {}

  /** The README's elided ids replaced by the last real ones of their kind. */
  substitute(text: string): string {
    return text.replace(/\b(agent|env|sess|sevt)_\.\.\./g, (placeholder, kind: string) => {
      const real = kind === 'sevt' ? this.waitingToolUse() : this.latest.get(kind);
      if (!real) throw new Error(`${placeholder} before the walk made one`);
      return real;
    });
  }

  /** Whether an agent process of the server runs a `sleep` (the `wait` request's shell loop). */
  private async toolIsRunning(): Promise<boolean> {
    for (const pid of await hostProcesses(path.join(this.dir, '.berth'))) {
      const cmdline = await readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '');
      if (cmdline.split('\0')[0]?.endsWith('sleep')) return true;
    }
    return false;
  }

  private waitingToolUse(): string | undefined {
    return this.stream?.events.filter((e) => e.type === 'agent.tool_use').at(-1)?.id;
  }

  async run(command: ShellCommand, where: string): Promise<void> {
    const request = parseCurl(command.argv);
    const route = this.substitute(request.path);
    // The server `npm start` runs; the walk's own listens on a free port.
    if (!command.argv.some((word) => word.startsWith(`${DOC_HOST}/`)))
      this.problems.push(`${where}: not a request to ${DOC_HOST}`);
    if (request.stream) {
      this.streamRoute = route;
      this.stream = new SseClient(`${this.server.url}${route}`);
      expect(await this.stream.status, where).toBe(200);
      return;
    }
    const body = request.body === undefined ? undefined : this.substitute(request.body);
    if (body?.includes('"user.interrupt"')) {
      // A person interrupts a turn they see doing something: here, once its tool's command runs.
      await eventually(() => this.toolIsRunning(), 'the turn to run its tool', { boundMs: 30_000 });
    }
    const res = await fetch(`${this.server.url}${route}`, {
      method: request.method,
      headers: request.headers,
      ...(body !== undefined && { body }),
      signal: AbortSignal.timeout(30_000),
    });
    const answer = { status: res.status, text: await res.text() };
    if (command.output !== undefined) {
      const problems = this.checker.checkJson(command.output, answer, 200);
      this.problems.push(...problems.map((p) => `${where}: ${p}`));
      const { id } = JSON.parse(answer.text) as { id?: string };
      const kind = id?.split('_')[0];
      if (kind) this.latest.set(kind, id);
    } else if (answer.status !== 200) {
      this.problems.push(`${where}: answered ${answer.status}: ${answer.text}`);
    }
    const expected = streamComment(command);
    if (expected) await this.checkStream(expected, where);
  }

  /** Waits for the events the comment promises (the turn's end, when it ends one) and compares. */
  private async checkStream(expected: ExpectedEvent[], where: string): Promise<void> {
    const stream = this.stream!;
    const from = this.seen;
    const fresh = () => stream.events.slice(from);
    const last = expected.at(-1)!;
    await stream
      .waitFor(
        () => fresh().filter((e) => e.type === last.type).length > 0 && fresh().length >= expected.length,
        45_000,
      )
      .catch(() => undefined);
    const events = fresh();
    this.seen = from + events.length;
    this.problems.push(...compareEvents(expected, events).map((p) => `${where}: ${p}`));
  }

  /** "Stop the server with Ctrl-C ... start it again": the stream gets its suspension, the server exits 0. */
  async restart(where: string): Promise<void> {
    const code = await interrupt(this.server);
    if (code !== 0) this.problems.push(`${where}: Ctrl-C exited ${code}`);
    // The server ends the stream once it has sent the drain's events.
    await this.stream?.waitForEnd(10_000).catch(() => undefined);
    const suspended = this.stream?.events.slice(this.seen).map((e) => e.type);
    if (suspended?.at(-1) !== 'session.status_suspended')
      this.problems.push(`${where}: the open stream ended with ${suspended?.join(', ')}, not a suspension`);
    this.stream?.close();
    this.server = await serve(this.dir);
    // The reader runs the stream command again; it resumes after the last event seen.
    const seq = this.stream?.events.at(-1)?.seq ?? 0;
    this.stream = new SseClient(`${this.server.url}${this.streamRoute}?after=${seq}`);
    this.seen = 0;
  }
}

/** A command of the README, run in `cwd` with the server's environment, bounded. */
function run(file: string, args: string[], cwd: string) {
  return runBounded(file, args, { cwd, env: serverEnv(cwd), timeoutMs: 90_000 });
}

/** The lines a `// prints: a, b, c (one a line)` comment promises. */
function printsComment(text: string): string[] {
  const at = text.indexOf('// prints:');
  const comment = text
    .slice(at + '// prints:'.length)
    .split('\n')
    .map((line) => line.replace(/^\s*\/\/\s?/, '').trim())
    .join(' ')
    .replace(/\(one a line\)/, '');
  return comment
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
}

/** A documented output line as a pattern: numbers stand for any number (they are this host's). */
function linePattern(line: string): RegExp {
  const escaped = line.trim().replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  return new RegExp(escaped.replace(/\d+(?:\\\.\d+)?/g, '\\d+(?:\\.\\d+)?'));
}

const claimed = new Set<DocBlock>();
function block(phrase: string): DocBlock {
  const found = BLOCKS.filter((b) => b.text.includes(phrase));
  if (found.length !== 1)
    throw new Error(`${README} has ${found.length} blocks with ${JSON.stringify(phrase)}`);
  claimed.add(found[0]!);
  return found[0]!;
}

describe('README.md examples', () => {
  let dir: string;
  let walk: QuickStart | undefined;

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'berth-readme-'));
  });

  afterAll(async () => {
    walk?.stream?.close();
    await stopAll();
    await rm(dir, { recursive: true, force: true });
  });

  it('the quick start: a tool call, a confirmation, a read, an interrupt, Ctrl-C and a resume', async () => {
    const curlBlocks = BLOCKS.filter((b) => b.lang === 'sh' && b.text.includes(`curl -s ${DOC_HOST}`));
    expect(curlBlocks.length).toBeGreaterThanOrEqual(3);
    const serverDir = path.join(dir, 'quick-start');
    await mkdir(serverDir);
    walk = new QuickStart(await serve(serverDir), serverDir);
    for (const doc of curlBlocks) claimed.add(doc);
    for (const doc of curlBlocks) {
      if (/Ctrl-C/.test(doc.before) && /start it again/.test(doc.before))
        await walk.restart(`line ${doc.line}`);
      for (const command of parseShell(doc.text))
        await walk.run(command, `${README}:${doc.line + command.line}`);
    }
    expect(walk.problems).toEqual([]);
    // The write needed the confirmation and landed in the session's own directory.
    const workspaces = path.join(serverDir, '.berth', 'workspaces', 'default');
    const session = walk.latest.get('sess')!;
    expect(await readFile(path.join(workspaces, session, 'notes.txt'), 'utf8')).toBe('hello\n');
  }, 240_000);

  it(
    "the official client's example, run as written",
    async () => {
      const example = block("import Anthropic from '@anthropic-ai/sdk'");
      // The quick start's server, or (the test run alone) one of its own, which afterAll stops.
      const server = walk?.server ?? (await serve(await mkdtemp(path.join(dir, 'client-'))));
      expect(example.text).toContain(DOC_BASE_URL);
      const ran = await runTypeScript(example.text.replaceAll(DOC_BASE_URL, server.url), serverEnv(dir));
      expect(ran.code, ran.stderr).toBe(0);
      expect(ran.stdout.trim().split('\n')).toEqual(printsComment(example.text));
    },
    3 * TYPESCRIPT_STEP_MS,
  );

  it('berth run writes what the task made to ./berth-out', async () => {
    const example = block('node bin/berth.js run');
    const cwd = await mkdtemp(path.join(dir, 'run-'));
    for (const command of parseShell(example.text)) {
      const [name, ...args] = command.argv;
      let out: { code: number; stdout: string; stderr: string };
      if (name === 'printf') {
        // `printf FORMAT > FILE`, the one redirection the README uses.
        const [format, redirect, file] = args;
        expect(redirect).toBe('>');
        await writeFile(path.join(cwd, file!), format!.replaceAll('\\n', '\n'));
        continue;
      }
      if (name === 'node') out = await run(process.execPath, [BIN, ...args.slice(1)], cwd);
      else out = await run(name!, args, cwd);
      expect(out.code, `${command.argv.join(' ')}: ${out.stderr}`).toBe(0);
      expect(command.output, command.argv.join(' ')).toBeDefined();
      expect(out.stdout.trim()).toBe(command.output!.trim());
    }
  }, 120_000);

  it('berth plan prints the two formulas', async () => {
    const example = block('node bin/berth.js plan');
    const [commandLine, ...lines] = example.text.split('\n');
    const args = commandLine!.split(/\s+/).slice(2);
    const out = await run(process.execPath, [BIN, ...args], await mkdtemp(path.join(dir, 'plan-')));
    expect(out.code, out.stderr).toBe(0);
    for (const line of lines) expect(out.stdout).toMatch(linePattern(line));
  }, 120_000);

  it(
    'Berth as a library: the example runs, on PostgreSQL, and drains',
    async () => {
      const example = block("from 'berth'");
      const store = /--store', '([^']+)'/.exec(example.text)?.[1];
      expect(store).toBeDefined();
      // The documented store is a placeholder host; a schema of this machine's PostgreSQL stands in for it.
      const postgres = await postgresBackend().create();
      try {
        const ran = await runTypeScript(example.text.replace(store!, postgres.url), serverEnv(dir));
        expect(ran.code, ran.stderr).toBe(0);
        expect(ran.stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+\n$/);
      } finally {
        await postgres.cleanup();
      }
    },
    3 * TYPESCRIPT_STEP_MS,
  );

  it('every block is run or listed', () => {
    const unclaimed = BLOCKS.filter(
      (b) => !claimed.has(b) && !Object.keys(SKIPPED).some((phrase) => b.text.includes(phrase)),
    );
    expect(unclaimed.map((b) => `${README}:${b.line}: ${b.text.split('\n')[0]}`)).toEqual([]);
  });

  it('leaves no agent process behind once the servers have stopped', async () => {
    if (walk) {
      walk.stream?.close();
      expect(await interrupt(walk.server)).toBe(0);
      walk = undefined;
    }
    expect(await hostProcesses(path.join(dir, 'quick-start', '.berth'))).toEqual([]);
  });
});
