/**
 * Runs what a document shows (a TypeScript example, a command) the way its reader would, bounded: each
 * command runs in a process group of its own, and at its deadline the whole group is killed, so that a
 * hung `tsx` (which runs the example in a child of its own) or `berth run` leaves nothing behind.
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { markedProcessesUnder } from './processes.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface RunResult {
  /** The exit code; -1 when the command was killed at its deadline or by a signal. */
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `file` with `args` in its own process group; at `timeoutMs` the group gets SIGKILL. */
export function runBounded(
  file: string,
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs: number },
): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const killGroup = (): void => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone
      }
    };
    const timer = setTimeout(() => {
      stderr += `\n(killed at its ${options.timeoutMs} ms deadline)`;
      killGroup();
    }, options.timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      resolve({ code: -1, stdout, stderr: `${stderr}${String(err)}` });
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      // Whatever the command left in its group (a tsx child, say) goes with it.
      killGroup();
      resolve({ code: code ?? -1, stdout, stderr });
    });
  });
}

/** The deadline of each step of {@link runTypeScript}; a test that runs one needs twice this and more. */
export const TYPESCRIPT_STEP_MS = 45_000;

/**
 * A TypeScript example as its own file: type-checked (strict) against the pinned packages, then run with
 * tsx. The file lives in a directory under node_modules, where `@anthropic-ai/sdk` and `berth` (this
 * package, built) resolve as they would in a user's project; it runs in a fresh directory under the run's
 * temp root (what it makes, a `./.berth` say, lands there), and every Berth agent process it left there is
 * killed afterwards (agents lead sessions of their own, out of reach of the group kill).
 */
export async function runTypeScript(text: string, env: NodeJS.ProcessEnv): Promise<RunResult> {
  const cache = path.join(ROOT, 'node_modules', '.cache');
  await mkdir(cache, { recursive: true });
  const dir = await mkdtemp(path.join(cache, 'doc-example-'));
  const cwd = await mkdtemp(path.join(os.tmpdir(), 'doc-example-run-'));
  try {
    await mkdir(path.join(dir, 'node_modules'));
    await symlink(ROOT, path.join(dir, 'node_modules', 'berth'));
    const file = path.join(dir, 'example.mts');
    await writeFile(file, text);
    const bin = (name: string): string => path.join(ROOT, 'node_modules', '.bin', name);
    const flags = ['--ignoreConfig', '--noEmit', '--strict', '--noUncheckedIndexedAccess', '--skipLibCheck'];
    const types = ['--module', 'nodenext', '--target', 'es2022', '--types', 'node'];
    const checked = await runBounded(bin('tsc'), [...flags, ...types, file], {
      cwd: dir,
      timeoutMs: TYPESCRIPT_STEP_MS,
    });
    if (checked.code !== 0) {
      return { ...checked, stderr: `the example does not type-check: ${checked.stdout}${checked.stderr}` };
    }
    return await runBounded(bin('tsx'), [file], { cwd, env, timeoutMs: TYPESCRIPT_STEP_MS });
  } finally {
    for (const p of await markedProcessesUnder(cwd)) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    await rm(dir, { recursive: true, force: true });
    await rm(cwd, { recursive: true, force: true });
  }
}
