/**
 * Ephemeral tasks end to end: the HTTP API, the real `claude` subprocess, the scripted model. A task
 * writes its inputs, runs, hands back what it wrote, and leaves no directory and no process behind;
 * time limits kill the whole tree; paths can never leave the task directory; a warm spare starts a
 * task; tenants never see each other's tasks.
 */
import { makeTelemetry } from '../src/observe/telemetry.js';
import { createHash, randomInt } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openBerthCore } from '../src/host/open-core.js';
import { findProcesses } from '../src/sandbox/process-tree.js';
import { startMockModel, type Scenario } from '../src/testing/index.js';
import { TestBerth, UNSANDBOXED, testServeConfig, type ApiResponse } from './helpers/berth.js';
import { hostProcesses } from './helpers/processes.js';
import { SseClient } from './helpers/sse.js';
import { eventually } from './helpers/wait.js';

// The jobs' names carry a number of this run's own: they are found by command line (one scrubs its
// environment by escaping), and another run on the machine must not be counted.
const JOB = 100_000 + randomInt(800_000);

const scenarios: Scenario[] = [
  {
    name: 'report',
    match: { userText: 'make the report' },
    steps: [
      {
        toolUse: {
          name: 'Bash',
          input: { command: 'mkdir -p out && tr a-z A-Z < input.txt > out/report.txt && echo done' },
        },
      },
      { text: 'The report is ready.' },
    ],
  },
  {
    name: 'links',
    match: { userText: 'make some links' },
    steps: [
      {
        toolUse: {
          name: 'Bash',
          input: {
            command:
              'ln -s /etc/passwd leak && ln -s .. up && mkdir d && ln -s /etc d/etc && echo real > real.txt && echo ok',
          },
        },
      },
      { text: 'Links made.' },
    ],
  },
  {
    name: 'daemon',
    match: { userText: 'start the jobs' },
    steps: [
      {
        toolUse: {
          name: 'Bash',
          // One job in the shell's group, one orphaned by a subshell, one escaping into a session of its
          // own (the CLI refuses commands that start with `sleep`, so they run a copy under another name).
          input: {
            command:
              `cp "$(command -v sleep)" ./taskd && { setsid ./taskd ${JOB + 2} >/dev/null 2>&1 & } ; ` +
              // Bounded: a job that never shows up fails the turn instead of hanging it.
              `for i in $(seq 2000); do grep -qsa "^\\./taskd.${JOB + 2}" /proc/[0-9]*/cmdline && break; sleep 0.01; done; ` +
              `./taskd ${JOB} >/dev/null 2>&1 & (./taskd ${JOB + 1} >/dev/null 2>&1 &); echo started`,
          },
        },
      },
      { text: 'The jobs are running.' },
    ],
  },
  {
    name: 'stall',
    match: { userText: 'stall forever' },
    steps: [{ text: 'never finished', fault: { stallMs: Infinity } }],
  },
  {
    name: 'slow',
    match: { userText: 'take your time' },
    steps: [
      {
        toolUse: { name: 'Bash', input: { command: 'echo slow > slow.txt && echo ok' } },
        fault: { chunkDelayMs: 100 },
      },
      { text: 'Took my time.', fault: { chunkDelayMs: 100 } },
    ],
  },
];

const servers: TestBerth[] = [];

async function start(args: string[] = []): Promise<TestBerth> {
  const berth = await TestBerth.start({ scenarios, args });
  servers.push(berth);
  return berth;
}

afterAll(async () => {
  for (const server of servers) await server.dispose().catch(() => undefined);
});

async function download(berth: TestBerth, route: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${berth.url}${route}`, { headers });
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()), headers: res.headers };
}

const sha256 = (data: string | Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * Everything a task request could change on the host: the files under the data dir (a task's sandbox, its
 * record and events in the blob store, which is `DATA_DIR/blobs` here), the slots (a task holds one while
 * it runs), this host's subprocesses, and the requests the model has had. A refused request changes none.
 */
async function hostState(berth: TestBerth): Promise<unknown> {
  const self = await berth.api('GET', '/v1/hosts/self');
  expect(self.status).toBe(200);
  return {
    files: (await readdir(berth.dataDir, { recursive: true })).sort(),
    slots: self.body.slots,
    processes: await hostProcesses(berth.dataDir),
    modelRequests: berth.model.requests.length,
  };
}

/** A refused request: its status, its stable code, and a message that names what was wrong. */
function expectRefused(res: ApiResponse, status: number, code: string, message?: string | RegExp): void {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  expect(res.body, JSON.stringify(res.body)).toMatchObject({
    type: 'error',
    error: { details: { error_code: code } },
  });
  if (message !== undefined) expect(res.body.error.message).toMatch(message);
}

/** Entries under the tenant's task directories (the sandboxes of tasks that have not ended). */
async function taskDirs(berth: TestBerth, tenant = 'default'): Promise<string[]> {
  return readdir(path.join(berth.dataDir, 'tenants', tenant, 'tasks')).catch(() => []);
}

describe('an ephemeral task', () => {
  let berth: TestBerth;
  beforeAll(async () => {
    berth = await start();
  });

  it('writes its inputs, runs, hands back what it wrote, and leaves no directory or process', async () => {
    const created = await berth.api('POST', '/v1/tasks', {
      prompt: 'please make the report',
      agent: { allowed_tools: ['Bash'] },
      files: [
        { path: 'input.txt', content: 'hello harbour\n' },
        {
          path: 'data/blob.bin',
          content: Buffer.from([0, 1, 2, 255]).toString('base64'),
          encoding: 'base64',
        },
      ],
    });
    expect(created.status, JSON.stringify(created.body)).toBe(202);
    expect(created.body).toMatchObject({ type: 'task', status: 'queued', prompt: 'please make the report' });
    const id = created.body.id as string;
    expect(id).toMatch(/^task_/);
    const root = berth.server.host.taskPaths('default', id).root;

    let record = (await berth.api('GET', `/v1/tasks/${id}`)).body;
    await eventually(async () => {
      record = (await berth.api('GET', `/v1/tasks/${id}`)).body;
      return ['succeeded', 'failed', 'timed_out'].includes(record.status as string);
    }, 'the task to end');
    expect(record, JSON.stringify(record)).toMatchObject({
      status: 'succeeded',
      result: 'The report is ready.',
      error: null,
      warm_start: false,
      num_turns: 2,
    });
    // The scripted model uses no tokens: a task on it costs nothing.
    expect(record.usage).toMatchObject({ input_tokens: 0, output_tokens: 0, cost_usd: 0 });
    expect(record.cost_usd).toBe(0);
    expect(record.duration_ms).toBeGreaterThan(0);
    expect(record.finished_at).toEqual(expect.any(String));
    // Only what the task created: the inputs are unchanged, so they are not artifacts.
    expect(record.artifacts).toEqual([
      { path: 'out/report.txt', bytes: 14, sha256: sha256('HELLO HARBOUR\n') },
    ]);

    const artifact = await download(berth, `/v1/tasks/${id}/artifacts/out/report.txt`);
    expect(artifact.status).toBe(200);
    expect(artifact.body.toString()).toBe('HELLO HARBOUR\n');
    // The same path percent-encoded as one segment.
    const encoded = await download(berth, `/v1/tasks/${id}/artifacts/out%2Freport.txt`);
    expect(encoded.body.toString()).toBe('HELLO HARBOUR\n');

    // The sandbox is gone: no directory, no process of this host.
    expect(existsSync(root)).toBe(false);
    expect(await taskDirs(berth)).toEqual([]);
    expect(await hostProcesses(berth.dataDir)).toEqual([]);
  });

  it('kills the jobs it left running, even one that escaped into a session of its own', async () => {
    const res = await berth.api('POST', '/v1/tasks?wait=true', {
      prompt: 'start the jobs',
      agent: { allowed_tools: ['Bash'] },
    });
    expect(res.body).toMatchObject({ status: 'succeeded', result: 'The jobs are running.' });
    // The jobs did start: the command prints `started` only once the escapee is running.
    const started = berth.model.requests.findLast((r) => r.isMain && r.toolResults.length > 0);
    expect(started?.toolResults[0]).toMatchObject({
      is_error: false,
      text: expect.stringContaining('started'),
    });
    // The copied binary is an artifact like any file the task made.
    expect(res.body.artifacts).toEqual([expect.objectContaining({ path: 'taskd' })]);
    for (const job of [`./taskd ${JOB}`, `./taskd ${JOB + 1}`, `./taskd ${JOB + 2}`]) {
      expect(await findProcesses((p) => p.cmdline === job), job).toEqual([]);
    }
    expect(await hostProcesses(berth.dataDir)).toEqual([]);
  });

  it('answers with the final record when asked to wait', async () => {
    const res = await berth.api('POST', '/v1/tasks?wait=true', { prompt: 'just say hi' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'succeeded',
      result: 'Scripted reply to: just say hi',
      artifacts: [],
    });
    expect(existsSync(berth.server.host.taskPaths('default', res.body.id as string).root)).toBe(false);
    // It was stored: it reads back the same.
    expect((await berth.api('GET', `/v1/tasks/${res.body.id}`)).body).toEqual(res.body);
  });

  it('is killed with its whole process tree when it runs past its time limit', async () => {
    const started = Date.now();
    const res = await berth.api('POST', '/v1/tasks?wait=true', {
      prompt: 'stall forever',
      timeout_ms: 2000,
      files: [{ path: 'keep.txt', content: 'x' }],
    });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'timed_out', error: { type: 'timed_out' }, artifacts: [] });
    expect(Date.now() - started).toBeLessThan(30_000);
    expect(existsSync(berth.server.host.taskPaths('default', res.body.id as string).root)).toBe(false);
    expect(await hostProcesses(berth.dataDir)).toEqual([]);
  });

  it('denies tools that are not in allowed_tools (nobody is there to confirm them)', async () => {
    const res = await berth.api('POST', '/v1/tasks?wait=true', {
      prompt: 'please make the report',
      files: [{ path: 'input.txt', content: 'x' }],
    });
    expect(res.body).toMatchObject({ status: 'succeeded', artifacts: [] });
    const request = berth.model.requests.findLast((r) => r.isMain && r.toolResults.length > 0);
    expect(request?.toolResults[0]).toMatchObject({ is_error: true });
    expect(request?.toolResults[0]?.text).toContain('allowed_tools');
  });

  it('streams its events from the start to a late subscriber, ending with the final status', async () => {
    const created = await berth.api('POST', '/v1/tasks', {
      prompt: 'take your time',
      agent: { allowed_tools: ['Bash'] },
    });
    expect(created.status).toBe(202);
    const id = created.body.id as string;
    const stream = new SseClient(`${berth.url}/v1/tasks/${id}/events/stream`);
    try {
      expect(await stream.status).toBe(200);
      await stream.waitForEnd(60_000);
      const types = stream.frames.map((f) => f.event);
      expect(types[0]).toBe('task.status_queued');
      expect(types[1]).toBe('task.status_running');
      expect(types).toContain('agent.tool_use');
      expect(types).toContain('agent.tool_result');
      expect(types).toContain('agent.message');
      expect(types.at(-1)).toBe('task.status_succeeded');
      const seqs = stream.frames.map((f) => Number(f.id));
      expect(seqs).toEqual(seqs.map((_, i) => i + 1));
      const final = JSON.parse(stream.frames.at(-1)!.data);
      expect(final.task).toMatchObject({ id, status: 'succeeded', artifacts: [{ path: 'slow.txt' }] });

      // As the API shows a session's events: the agent's in Managed Agents' shapes, the task's own with
      // the same id, processed_at and seq.
      const events = stream.frames.map((f) => JSON.parse(f.data) as Record<string, unknown>);
      for (const [i, e] of events.entries()) {
        expect(e).toMatchObject({ type: stream.frames[i]!.event, seq: seqs[i] });
        expect(e.id).toMatch(/^sevt_/);
        expect(Date.parse(String(e.processed_at))).not.toBeNaN();
        expect(e).not.toHaveProperty('created_at');
      }
      expect(events[1]).toMatchObject({ type: 'task.status_running', warm_start: false });
      const use = events.find((e) => e.type === 'agent.tool_use')!;
      expect(use).toMatchObject({
        name: 'bash',
        input: { command: 'echo slow > slow.txt && echo ok' },
        evaluated_permission: 'allow',
      });
      expect(use).not.toHaveProperty('tool_use_id');
      expect(events.find((e) => e.type === 'agent.tool_result')).toMatchObject({
        tool_use_id: use.id,
        is_error: false,
        content: [{ type: 'text', text: expect.stringContaining('ok') }],
      });
      expect(events.filter((e) => e.type === 'agent.message').at(-1)).toMatchObject({
        content: [{ type: 'text', text: 'Took my time.' }],
      });
    } finally {
      stream.close();
    }
    // After the end, the stored events replay the same way (and a resumption skips what it had).
    const again = new SseClient(`${berth.url}/v1/tasks/${id}/events/stream?after=2`);
    try {
      await again.waitForEnd();
      expect(again.frames[0]?.id).toBe('3');
      expect(again.frames.at(-1)?.event).toBe('task.status_succeeded');
      expect(again.frames).toEqual(stream.frames.slice(2));
    } finally {
      again.close();
    }
  });

  it('never returns a symlink, and never follows one out of the task directory', async () => {
    const res = await berth.api('POST', '/v1/tasks?wait=true', {
      prompt: 'make some links',
      agent: { allowed_tools: ['Bash'] },
    });
    expect(res.body).toMatchObject({ status: 'succeeded' });
    expect(res.body.artifacts).toEqual([{ path: 'real.txt', bytes: 5, sha256: sha256('real\n') }]);
    for (const link of ['leak', 'up/etc/passwd', 'd/etc/passwd']) {
      const got = await download(berth, `/v1/tasks/${res.body.id}/artifacts/${link}`);
      expect(got.status, link).toBe(404);
      expect(got.body.toString()).not.toContain('root:');
    }
  });

  it('refuses input paths that would leave the task directory, and writes nothing', async () => {
    const before = await hostState(berth);
    for (const bad of ['../x', '/etc/x', 'a/../../x', 'a/./b', 'a//b', 'dir/', '..', 'a\\..\\x', 'nul\0x']) {
      const res = await berth.api('POST', '/v1/tasks', {
        prompt: 'please make the report',
        files: [
          { path: 'fine.txt', content: 'ok' },
          { path: bad, content: 'pwned' },
        ],
      });
      expectRefused(res, 400, 'invalid_path', 'files.1.path');
    }
    // A file where another needs a directory, and the same path twice.
    for (const [files, message] of [
      [
        [
          { path: 'a', content: '' },
          { path: 'a/b', content: '' },
        ],
        /files\.0\.path "a" is a file/,
      ],
      [
        [
          { path: 'a', content: '' },
          { path: 'a', content: '' },
        ],
        /files\.1\.path "a" is given twice/,
      ],
    ] as const) {
      const res = await berth.api('POST', '/v1/tasks', { prompt: 'x', files });
      expectRefused(res, 400, 'invalid_path', message);
    }
    expect(await hostState(berth)).toEqual(before);
    expect(existsSync(path.join(berth.dataDir, 'x'))).toBe(false);
  });

  it('refuses inputs over the limits with a clear error, and changes nothing', async () => {
    const before = await hostState(berth);
    const many = Array.from({ length: 101 }, (_, i) => ({ path: `f${i}.txt`, content: 'x' }));
    const tooMany = await berth.api('POST', '/v1/tasks', { prompt: 'x', files: many });
    expectRefused(tooMany, 413, 'limit_exceeded', 'at most 100');

    const big = await berth.api('POST', '/v1/tasks', {
      prompt: 'x',
      files: [{ path: 'big.txt', content: 'x'.repeat(10 * 1024 * 1024 + 1) }],
    });
    expectRefused(big, 413, 'limit_exceeded', 'big.txt');

    const chunk = 'y'.repeat(9 * 1024 * 1024);
    const total = await berth.api('POST', '/v1/tasks', {
      prompt: 'x',
      files: [0, 1, 2, 3].map((i) => ({ path: `part${i}`, content: chunk })),
    });
    expectRefused(total, 413, 'limit_exceeded', 'together');

    const notBase64 = await berth.api('POST', '/v1/tasks', {
      prompt: 'x',
      files: [{ path: 'a.bin', content: 'not base64!', encoding: 'base64' }],
    });
    expectRefused(notBase64, 400, 'invalid_request', /files\.0.*base64/);

    const tooLong = await berth.api('POST', '/v1/tasks', { prompt: 'x', timeout_ms: 3_600_001 });
    expectRefused(tooLong, 400, 'invalid_request', 'timeout_ms');

    const unknown = await berth.api('POST', '/v1/tasks', { prompt: 'x', colour: 'red' });
    expectRefused(unknown, 400, 'invalid_request', 'colour');

    const blank = await berth.api('POST', '/v1/tasks', { prompt: '   ' });
    expectRefused(blank, 400, 'invalid_request', 'prompt');

    expect(await hostState(berth)).toEqual(before);
    expect(await taskDirs(berth)).toEqual([]);
  });

  it('refuses artifact requests that try to leave the task, and unknown tasks', async () => {
    const res = await berth.api('POST', '/v1/tasks?wait=true', {
      prompt: 'please make the report',
      agent: { allowed_tools: ['Bash'] },
      files: [{ path: 'input.txt', content: 'abc' }],
    });
    const id = res.body.id as string;
    for (const [attempt, status, code] of [
      ['..%2F..%2F..%2Fetc%2Fpasswd', 400, 'invalid_path'],
      ['%2Fetc%2Fpasswd', 400, 'invalid_path'],
      ['out/..%2F..%2Finput.txt', 400, 'invalid_path'],
      // The URL parser takes `%2e%2e` for `..`: the path leaves the task's routes, not its directory.
      ['%2e%2e/%2e%2e/etc/passwd', 404, 'not_found'],
      ['out%00/report.txt', 400, 'invalid_path'],
    ] as const) {
      const got = await download(berth, `/v1/tasks/${id}/artifacts/${attempt}`);
      expect(got.body.toString()).not.toContain('root:');
      expectRefused({ ...got, body: JSON.parse(got.body.toString()) }, status, code);
    }
    // An input file is not an artifact, and a path that is not in the list is not found.
    for (const artifact of ['input.txt', 'out/nothing']) {
      const got = await download(berth, `/v1/tasks/${id}/artifacts/${artifact}`);
      expectRefused({ ...got, body: JSON.parse(got.body.toString()) }, 404, 'artifact_not_found', artifact);
    }
    expectRefused(await berth.api('GET', '/v1/tasks/task_doesNotExist'), 404, 'task_not_found');
    expectRefused(await berth.api('GET', '/v1/tasks/..%2Fsessions'), 400, 'invalid_id');
  });
});

describe('after a restart', () => {
  it('reads finished tasks back from the blob store, and fails the ones a crash left', async () => {
    const first = await start();
    const done = await first.api('POST', '/v1/tasks?wait=true', {
      prompt: 'please make the report',
      agent: { allowed_tools: ['Bash'] },
      files: [{ path: 'input.txt', content: 'kept\n' }],
    });
    expect(done.body).toMatchObject({ status: 'succeeded' });
    await first.stop();
    // What a host killed mid-task leaves: a sandbox directory (its processes are the orphan sweep's).
    const crashed = 'task_leftByACrash';
    await mkdir(path.join(first.dataDir, 'tenants', 'default', 'tasks', crashed, 'work'), {
      recursive: true,
    });

    const second = await TestBerth.start({ scenarios, dataDir: first.dataDir, model: first.model });
    // Disposed first: `first` owns the data dir and the model.
    servers.unshift(second);
    const id = done.body.id as string;
    expect((await second.api('GET', `/v1/tasks/${id}`)).body).toEqual(done.body);
    const artifact = await download(second, `/v1/tasks/${id}/artifacts/out/report.txt`);
    expect(artifact.body.toString()).toBe('KEPT\n');
    const stream = new SseClient(`${second.url}/v1/tasks/${id}/events/stream`);
    try {
      await stream.waitForEnd();
      expect(stream.frames.at(-1)?.event).toBe('task.status_succeeded');
      // Read back from the blob store, shown as a live task's are.
      const final = JSON.parse(stream.frames.at(-1)!.data) as Record<string, unknown>;
      expect(final).toMatchObject({
        id: expect.stringMatching(/^sevt_/),
        processed_at: expect.any(String),
        task: done.body,
      });
      expect(final).not.toHaveProperty('created_at');
    } finally {
      stream.close();
    }
    expect((await second.api('GET', `/v1/tasks/${crashed}`)).body).toMatchObject({
      status: 'failed',
      error: { type: 'host_restarted' },
    });
    expect(await taskDirs(second)).toEqual([]);
  });
});

describe('tasks and tenants', () => {
  it('keeps each tenant to its own tasks', async () => {
    const berth = await start(['--api-keys', 'acme:key-acme-123,globex:key-globex-123']);
    const acme = { authorization: 'Bearer key-acme-123' };
    const globex = { authorization: 'Bearer key-globex-123' };
    const res = await berth.api(
      'POST',
      '/v1/tasks?wait=true',
      {
        prompt: 'please make the report',
        agent: { allowed_tools: ['Bash'] },
        files: [{ path: 'input.txt', content: 'q' }],
      },
      acme,
    );
    expect(res.body).toMatchObject({ status: 'succeeded' });
    const id = res.body.id as string;
    expect((await berth.api('GET', `/v1/tasks/${id}`, undefined, acme)).status).toBe(200);
    const other = await berth.api('GET', `/v1/tasks/${id}`, undefined, globex);
    expect(other.status).toBe(404);
    expect(other.body.error.details.error_code).toBe('task_not_found');
    for (const route of [`/v1/tasks/${id}/artifacts/out/report.txt`, `/v1/tasks/${id}/events/stream`]) {
      const got = await download(berth, route, globex);
      expectRefused({ ...got, body: JSON.parse(got.body.toString()) }, 404, 'task_not_found');
    }
    const own = await download(berth, `/v1/tasks/${id}/artifacts/out/report.txt`, acme);
    expect(own.status).toBe(200);
    expect(own.body.toString()).toBe('Q');
    expectRefused(await berth.api('GET', `/v1/tasks/${id}`), 401, 'unauthorized');
  });
});

describe('a warm task start', () => {
  it('ends the spare of a task cut short before it could claim it', async () => {
    const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-test-'));
    const model = await startMockModel();
    const config = testServeConfig(dataDir, model, ['--warm-pool', '2', ...UNSANDBOXED]);
    const core = await openBerthCore(config, { telemetry: makeTelemetry() });
    try {
      // One spare for the default tenant, one for tasks.
      await eventually(() => core.host.warmPoolStats.parked === 2, 'two parked spares');
      const task = await core.tasks.create('default', { prompt: 'never runs' });
      expect(task.record.warm_start).toBe(true);
      // Before the task's process starts (it starts on the next turn of the event loop).
      await core.tasks.close();
      expect(task.record.status).toBe('failed');
    } finally {
      await core.close();
      await model.close();
    }
    // The pool ended the spare it still had; the one the task took is the task's to end.
    expect(await hostProcesses(dataDir)).toEqual([]);
    await rm(dataDir, { recursive: true, force: true });
  });

  it('claims a task spare, runs in it, and leaves nothing of it behind', async () => {
    // One slot: the first task makes room by giving up the parked session spare, and the pool, which
    // follows demand, prewarms a task spare once that task has ended.
    const berth = await start([
      ...UNSANDBOXED,
      '--warm-pool',
      '1',
      '--host-ram',
      '2GiB',
      '--host-overhead',
      '1GiB',
      '--session-ram-ceiling',
      '1GiB',
    ]);
    const host = berth.server.host;
    const parked = async (): Promise<number> =>
      (await berth.api('GET', '/v1/hosts/self')).body.warm_pool.parked as number;
    await eventually(async () => (await parked()) === 1, 'a parked spare');
    const cold = await berth.api('POST', '/v1/tasks?wait=true', { prompt: 'just say hi' });
    expect(cold.body).toMatchObject({ status: 'succeeded', warm_start: false });
    await eventually(
      async () => (await parked()) === 1 && host.warmPoolStats.prewarmed === 2,
      'a task spare',
    );
    const spareDirs = await readdir(path.join(berth.dataDir, 'tenants', '_tasks'));
    expect(spareDirs).toHaveLength(1);

    const warm = await berth.api('POST', '/v1/tasks?wait=true', {
      prompt: 'please make the report',
      agent: { allowed_tools: ['Bash'] },
      files: [{ path: 'input.txt', content: 'warm\n' }],
    });
    expect(warm.body, JSON.stringify(warm.body)).toMatchObject({
      status: 'succeeded',
      warm_start: true,
      result: 'The report is ready.',
      artifacts: [{ path: 'out/report.txt', bytes: 5 }],
    });
    expect(host.warmPoolStats.claimed).toBe(1);
    const artifact = await download(berth, `/v1/tasks/${warm.body.id}/artifacts/out/report.txt`);
    expect(artifact.body.toString()).toBe('WARM\n');
    // The spare's own directories went with the task.
    expect(existsSync(path.join(berth.dataDir, 'tenants', '_tasks', spareDirs[0]!))).toBe(false);
    expect(existsSync(host.taskPaths('default', warm.body.id as string).root)).toBe(false);
  });
});
