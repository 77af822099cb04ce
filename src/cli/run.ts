/**
 * `berth run "PROMPT"`: one ephemeral task, its result printed and its artifacts written to `--out`.
 * With `--server URL` (or `BERTH_SERVER`) the task runs on that server through the API
 * (`POST /v1/tasks?wait=true`, then each artifact is downloaded); without one it runs in this process
 * with the same task runner, on a throwaway data dir that is removed at the end.
 */
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseDuration, parseServeConfig } from '../config.js';
import { BerthError, describeError } from '../errors.js';
import { DEFAULT_TENANT } from '../http/auth.js';
import { TOOLSET_TOOLS, cliToolName, type ApiToolName } from '../http/tool-names.js';
import { openBerthCore } from '../server.js';
import { relativePathProblem, type TaskFileInput } from '../tasks/inputs.js';
import type { TaskAgent, TaskRecord } from '../tasks/task.js';
import { TOOL_DENIED_MARK } from '../tasks/task-agent.js';
import { HELP_OPTION, formatOptions, parseCommandArgs, type CommandOption } from './args.js';

/** `berth run`'s flags: its `parseArgs` options and its help. */
const RUN_OPTIONS = {
  file: {
    type: 'string',
    multiple: true,
    value: 'PATH',
    help: "an input file, placed in the task's directory under its name (repeatable)",
  },
  out: { type: 'string', value: 'DIR', help: "where the task's artifacts are written (default ./berth-out)" },
  server: {
    type: 'string',
    value: 'URL',
    help: 'run the task on this Berth server (BERTH_SERVER); without one it runs in-process',
  },
  'api-key': { type: 'string', value: 'KEY', help: "the server's API key (BERTH_API_KEY)" },
  timeout: { type: 'string', value: 'DURATION', help: "the task's time limit (default 10m, at most 1h)" },
  'allowed-tools': {
    type: 'string',
    value: 'LIST',
    help: 'tools the agent may use, comma-separated, e.g. Bash,Write\n(every other tool is denied: a task has no one to confirm a tool use)',
  },
  'system-prompt': { type: 'string', value: 'TEXT', help: "the agent's system prompt" },
  model: { type: 'string', value: 'NAME', help: 'the model' },
  'max-turns': { type: 'string', value: 'N', help: 'the most agentic turns' },
  json: { type: 'boolean', help: "print the task's final record as JSON instead of its result text" },
  'model-endpoint': { type: 'string', value: 'URL', help: 'as for "berth serve" (in-process only)' },
  'mock-model': { type: 'boolean', help: 'as for "berth serve" (in-process only)' },
  'mock-script': { type: 'string', value: 'FILE', help: 'as for "berth serve" (in-process only)' },
  help: HELP_OPTION,
} as const satisfies Record<string, CommandOption>;

/** Flags of the in-process run, which a task on a server has no use for. */
const IN_PROCESS_ONLY = ['model-endpoint', 'mock-model', 'mock-script'] as const;

export const RUN_HELP = `Usage: berth run "PROMPT" [options]

Runs one ephemeral task: prints its result and writes the files it created or changed to --out.
Tools are denied unless --allowed-tools names them. Exits 0 when the task succeeded, 1 otherwise,
2 for bad options.

${formatOptions(RUN_OPTIONS)}`;

/** A finished task and the tools it was denied. */
interface Ran {
  record: TaskRecord;
  denied: string[];
}

/** The body of `POST /v1/tasks`. */
interface TaskBody {
  prompt: string;
  agent?: TaskAgent;
  files?: TaskFileInput[];
  timeout_ms: number;
  max_turns?: number;
}

export async function runRunCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const { values, positionals } = parseCommandArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: RUN_OPTIONS,
  });
  if (values.help) {
    process.stdout.write(`${RUN_HELP}\n`);
    return 0;
  }
  const prompt = positionals.join(' ').trim();
  if (prompt === '') throw new BerthError('invalid_config', 'berth run needs a prompt: berth run "PROMPT"');
  const maxTurns = values['max-turns'] === undefined ? undefined : Number(values['max-turns']);
  if (maxTurns !== undefined && (!Number.isInteger(maxTurns) || maxTurns < 1)) {
    throw new BerthError('invalid_config', '--max-turns must be a whole number of at least 1');
  }
  const server = values.server ?? env.BERTH_SERVER;
  const serverUrl = server === undefined || server === '' ? undefined : parseServerUrl(server);
  const localOnly = IN_PROCESS_ONLY.filter((flag) => values[flag] !== undefined);
  if (serverUrl && localOnly.length > 0) {
    // The server runs the task with its own model: these would be silently ignored.
    const given = localOnly.map((flag) => `--${flag}`).join(', ');
    const from = values.server === undefined ? 'BERTH_SERVER' : '--server';
    throw new BerthError(
      'invalid_config',
      `${given}: only for a task run in-process; with ${from} the task runs on the server, with its model`,
    );
  }
  const agent: TaskAgent = {
    ...(values['allowed-tools'] !== undefined && {
      allowed_tools: values['allowed-tools']
        .split(',')
        .map((t) => t.trim())
        .filter(Boolean),
    }),
    ...(values['system-prompt'] !== undefined && { system_prompt: values['system-prompt'] }),
    ...(values.model !== undefined && { model: values.model }),
  };
  const body: TaskBody = {
    prompt,
    ...(Object.keys(agent).length > 0 && { agent }),
    files: await readInputFiles(values.file ?? []),
    timeout_ms: parseDuration(values.timeout ?? '10m', '--timeout'),
    ...(maxTurns !== undefined && { max_turns: maxTurns }),
  };
  const outDir = path.resolve(values.out ?? 'berth-out');

  let ran: Ran;
  if (serverUrl) {
    const apiKey = values['api-key'] ?? env.BERTH_API_KEY;
    ran = await runOnServer(serverUrl, apiKey, body, outDir);
  } else {
    const serveArgs: string[] = [];
    if (values['model-endpoint'] !== undefined) serveArgs.push('--model-endpoint', values['model-endpoint']);
    if (values['mock-model']) serveArgs.push('--mock-model');
    if (values['mock-script'] !== undefined) serveArgs.push('--mock-script', values['mock-script']);
    ran = await runInProcess(serveArgs, env, body, outDir);
  }
  const { record, denied } = ran;

  process.stdout.write(values.json ? `${JSON.stringify(record)}\n` : `${record.result ?? ''}\n`);
  if (record.artifacts.length > 0) {
    process.stderr.write(`berth: wrote ${record.artifacts.length} artifact(s) to ${outDir}\n`);
  }
  if (denied.length > 0) {
    // The agent asked for a tool and was told no: without this note a run that should have written files
    // just prints the model's apology, and nothing says why.
    const tools = [...new Set(denied)];
    process.stderr.write(
      `berth: the agent was denied ${tools.join(', ')}: a task's tools are denied unless --allowed-tools ` +
        `names them (e.g. --allowed-tools ${tools.join(',')})\n`,
    );
  }
  if (record.status !== 'succeeded') {
    const why = record.error ? `${record.error.type}: ${record.error.message}` : 'no reason given';
    process.stderr.write(`berth: task ${record.id} ${record.status.replace('_', ' ')} (${why})\n`);
    return 1;
  }
  return 0;
}

function parseServerUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new BerthError('invalid_config', `--server: ${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BerthError('invalid_config', `--server: ${JSON.stringify(value)} is not an http(s) URL`);
  }
  return url;
}

/** Each `--file` goes into the task's directory under its own name. */
async function readInputFiles(files: readonly string[]): Promise<TaskFileInput[]> {
  const names = new Map<string, string>();
  const inputs: TaskFileInput[] = [];
  for (const file of files) {
    const name = path.basename(file);
    const other = names.get(name);
    if (other !== undefined) {
      throw new BerthError('invalid_config', `--file ${file} and --file ${other} have the same name ${name}`);
    }
    names.set(name, file);
    let content: Buffer;
    try {
      if (!(await stat(file)).isFile()) throw new Error('not a regular file');
      content = await readFile(file);
    } catch (err) {
      throw new BerthError('invalid_config', `--file ${file}: ${describeError(err)}`);
    }
    inputs.push({ path: name, content: content.toString('base64'), encoding: 'base64' });
  }
  return inputs;
}

async function runInProcess(
  serveArgs: string[],
  env: NodeJS.ProcessEnv,
  body: TaskBody,
  outDir: string,
): Promise<Ran> {
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'berth-run-'));
  try {
    // One task: no spare would ever be claimed, so none is prewarmed.
    const config = parseServeConfig(['--data-dir', dataDir, '--warm-pool', '0', ...serveArgs], {
      PATH: env.PATH,
      ANTHROPIC_API_KEY: env.ANTHROPIC_API_KEY,
    });
    const core = await openBerthCore(config);
    try {
      const task = await core.tasks.create(DEFAULT_TENANT, {
        prompt: body.prompt,
        agent: body.agent,
        files: body.files,
        timeoutMs: body.timeout_ms,
        maxTurns: body.max_turns,
      });
      const record = await task.done;
      for (const artifact of record.artifacts) {
        const opened = await core.tasks.openArtifact(DEFAULT_TENANT, record.id, artifact.path);
        await writeArtifact(outDir, artifact.path, Readable.from(opened.stream));
      }
      return { record, denied: deniedTools(task.events()) };
    } finally {
      await core.close();
    }
  } finally {
    await rm(dataDir, { recursive: true, force: true });
  }
}

async function runOnServer(
  base: URL,
  apiKey: string | undefined,
  body: TaskBody,
  outDir: string,
): Promise<Ran> {
  const headers: Record<string, string> = apiKey ? { authorization: `Bearer ${apiKey}` } : {};
  const created = await request(new URL('v1/tasks?wait=true', withSlash(base)), {
    method: 'POST',
    headers: { ...headers, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = (await readAll(created.body)).toString('utf8');
  if (created.status !== 200) throw new Error(`the server answered ${created.status}: ${apiMessage(text)}`);
  const record = JSON.parse(text) as TaskRecord;
  for (const artifact of record.artifacts) {
    const encoded = artifact.path.split('/').map(encodeURIComponent).join('/');
    const url = new URL(`v1/tasks/${encodeURIComponent(record.id)}/artifacts/${encoded}`, withSlash(base));
    const res = await request(url, { method: 'GET', headers });
    if (res.status !== 200) {
      const message = apiMessage((await readAll(res.body)).toString('utf8'));
      throw new Error(`downloading artifact ${artifact.path}: ${res.status} ${message}`);
    }
    await writeArtifact(outDir, artifact.path, res.body);
  }
  return { record, denied: await serverDeniedTools(base, headers, record.id) };
}

/**
 * The tools a server denied the task, from its stored events (the stream of a finished task ends after its
 * final status). Only for the note: a server that cannot say (an older one, a network error) denied none.
 */
async function serverDeniedTools(base: URL, headers: Record<string, string>, id: string): Promise<string[]> {
  try {
    const url = new URL(`v1/tasks/${encodeURIComponent(id)}/events/stream`, withSlash(base));
    const res = await request(url, { method: 'GET', headers: { ...headers, accept: 'text/event-stream' } });
    const text = (await readAll(res.body)).toString('utf8');
    if (res.status !== 200) return [];
    const events = text
      .split('\n')
      .filter((line) => line.startsWith('data:'))
      .map((line) => JSON.parse(line.slice('data:'.length)) as unknown);
    return deniedTools(events);
  } catch {
    return [];
  }
}

/** The name `--allowed-tools` takes: the API shows toolset tools by their own names (`bash`). */
function cliName(name: string): string {
  return Object.hasOwn(TOOLSET_TOOLS, name) ? cliToolName(name as ApiToolName) : name;
}

/**
 * The tools whose use the task's tool gate denied (tasks/task-agent.ts), by name, in the order asked. A
 * denial reaches the events as an erroring `agent.tool_result` carrying the gate's message, which names
 * `allowed_tools`; the result points at its `agent.tool_use` by that event's id (`tool_use_event_id` as
 * stored, `tool_use_id` as the API shows it). Works on both.
 */
export function deniedTools(events: readonly unknown[]): string[] {
  const uses = new Map<string, string>();
  const denied: string[] = [];
  for (const event of events as ReadonlyArray<Record<string, unknown>>) {
    if (event.type === 'agent.tool_use' && typeof event.id === 'string') {
      uses.set(event.id, cliName(String(event.name)));
    } else if (event.type === 'agent.tool_result' && event.is_error === true) {
      if (!JSON.stringify(event.content ?? '').includes(TOOL_DENIED_MARK)) continue;
      const useId = event.tool_use_event_id ?? event.tool_use_id;
      denied.push((typeof useId === 'string' && uses.get(useId)) || 'a tool');
    }
  }
  return denied;
}

/** Writes one artifact under `outDir`; its path is checked again here, whoever sent it. */
async function writeArtifact(outDir: string, artifactPath: string, data: Readable): Promise<void> {
  const problem = relativePathProblem(artifactPath);
  if (problem) {
    data.destroy();
    throw new BerthError('invalid_path', `artifact path ${JSON.stringify(artifactPath)} ${problem}`);
  }
  const file = path.join(outDir, ...artifactPath.split('/'));
  await mkdir(path.dirname(file), { recursive: true });
  await pipeline(data, createWriteStream(file));
}

function withSlash(url: URL): URL {
  return url.pathname.endsWith('/') ? url : new URL(`${url.href}/`);
}

function apiMessage(text: string): string {
  try {
    const parsed = JSON.parse(text) as {
      error?: { message?: string; details?: { error_code?: string } };
    };
    if (parsed.error?.message)
      return `${parsed.error.details?.error_code ?? 'error'}: ${parsed.error.message}`;
  } catch {
    // not JSON: the text itself
  }
  return text.slice(0, 500);
}

/**
 * One HTTP request with no client-side time limit: `?wait=true` holds the response for as long as the
 * task runs (up to an hour), past fetch's default header timeout of five minutes.
 */
function request(
  url: URL,
  options: { method: string; headers: Record<string, string>; body?: string },
): Promise<{ status: number; body: Readable }> {
  const client = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(url, { method: options.method, headers: options.headers }, (res) =>
      resolve({ status: res.statusCode ?? 0, body: res }),
    );
    req.on('error', (err) => reject(new Error(`${url.origin}: ${describeError(err)}`, { cause: err })));
    req.end(options.body);
  });
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
