/**
 * Runs once around the whole suite, in vitest's main process.
 *
 * A temp root of the run's own. The setup makes `<tmp>/berth-vitest-<pid>-XXXXXX/`, writes `owner` in it
 * (this process's pid and start time) and points `TMPDIR` at it. Vitest forks its workers with the main
 * process's environment as it is after this setup, so every data dir a test makes under `os.tmpdir()`,
 * and with it every agent's `CLAUDE_CONFIG_DIR`, lies under the root. A process of this run is a Berth
 * subprocess (it carries the tree marker) whose config dir is under the root; the root is removed at the
 * end.
 *
 * Several runs may share the machine (a developer's and a CI job in a fresh clone, say), and some tests
 * leave processes behind on purpose for a moment (a host SIGKILLed so that the next host must sweep its
 * orphans). A run therefore judges only its own processes, and those under a root whose owner is gone
 * (a run that crashed); never another live run's. At the end it fails the run if a process of its own is
 * still alive: no test may leave orphans.
 *
 * Tests that run `bin/berth.js` load `dist/`: when a source file is newer than its build, the setup fails
 * the run at once, saying so, rather than let `npx vitest run test/x.test.ts` test stale code (`npm test`
 * builds before it starts vitest; the check costs a few hundred `stat`s).
 */
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { findProcesses, treeMarkerOf, type ProcessInfo } from '../src/sandbox/process-tree.js';

const ROOT_PREFIX = 'berth-vitest-';
const REPO = path.resolve(fileURLToPath(new URL('..', import.meta.url)));

/** Field 22 of /proc/PID/stat (clock ticks after boot): tells a live owner from a reused pid. */
async function startTimeOf(pid: number): Promise<string | undefined> {
  try {
    const text = await readFile(`/proc/${pid}/stat`, 'utf8');
    return text.slice(text.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Whether the run that made `root` (a `berth-vitest-<pid>-*` directory) is still alive. */
async function ownerAlive(root: string): Promise<boolean> {
  const pid = Number(/^berth-vitest-(\d+)-/.exec(path.basename(root))?.[1]);
  if (!Number.isInteger(pid) || pid <= 0) return false;
  const started = await startTimeOf(pid);
  if (started === undefined) return false;
  try {
    const owner = JSON.parse(await readFile(path.join(root, 'owner'), 'utf8')) as { start?: string };
    return owner.start === started;
  } catch {
    // No owner file: being made (it is written before any test starts), or removed at the end.
    return true;
  }
}

/** The run root a process's config dir lies under, if any. */
function runRootOf(p: ProcessInfo, base: string): string | undefined {
  const dir = p.env.find((v) => v.startsWith('CLAUDE_CONFIG_DIR='))?.slice('CLAUDE_CONFIG_DIR='.length);
  if (!dir?.startsWith(`${base}/${ROOT_PREFIX}`)) return undefined;
  return path.join(base, dir.slice(base.length + 1).split('/')[0]!);
}

/** Berth subprocesses (tree-marked) whose config dir is under some run root in `base`. */
async function runProcesses(base: string): Promise<Array<ProcessInfo & { root: string }>> {
  const found = await findProcesses(
    (p) => treeMarkerOf(p.env) !== undefined && runRootOf(p, base) !== undefined,
  );
  return found.map((p) => ({ ...p, root: runRootOf(p, base)! }));
}

function killAll(list: readonly ProcessInfo[]): void {
  for (const p of list) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Kills what runs that are gone left (processes and roots); leaves live runs alone. */
async function sweepDeadRuns(base: string): Promise<void> {
  const dead = new Map<string, boolean>();
  const isDead = async (root: string): Promise<boolean> => {
    if (!dead.has(root)) dead.set(root, !(await ownerAlive(root)));
    return dead.get(root)!;
  };
  const orphans: ProcessInfo[] = [];
  for (const p of await runProcesses(base)) if (await isDead(p.root)) orphans.push(p);
  if (orphans.length > 0) {
    process.stderr.write(`global-setup: killing ${orphans.length} process(es) left by a run that ended\n`);
    killAll(orphans);
  }
  const roots = (await readdir(base)).filter((name) => name.startsWith(ROOT_PREFIX));
  for (const name of roots) {
    const root = path.join(base, name);
    if (await isDead(root)) await rm(root, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Source files (non-test) newer than their build in dist/, or without one. */
async function staleSources(): Promise<string[]> {
  const stale: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(file);
      else if (
        entry.name.endsWith('.ts') &&
        !entry.name.endsWith('.test.ts') &&
        !entry.name.endsWith('.d.ts')
      ) {
        const built = path
          .join(REPO, 'dist', path.relative(path.join(REPO, 'src'), file))
          .replace(/\.ts$/, '.js');
        const [source, output] = await Promise.all([stat(file), stat(built).catch(() => undefined)]);
        if (!output || output.mtimeMs < source.mtimeMs) stale.push(path.relative(REPO, file));
      }
    }
  };
  await walk(path.join(REPO, 'src'));
  return stale;
}

/**
 * Fails the run when dist/ is older than src/. Building here instead would rewrite dist/ under another
 * run's tests in the same checkout (seen: a `berth serve` that loaded half an old and half a new dist/
 * died with a SyntaxError), so only `npm run build` (which `npm test` runs first) writes it.
 */
async function checkDistFresh(): Promise<void> {
  // A run of unit tests alone (`npx vitest run src/...`: every file filter under src/) imports the sources.
  const filters = process.argv.slice(2).filter((arg) => !arg.startsWith('-') && /[/.]/.test(arg));
  const unitsOnly =
    filters.length > 0 &&
    filters.every((f) => path.resolve(REPO, f).startsWith(path.join(REPO, 'src') + path.sep));
  if (unitsOnly) return;
  const stale = await staleSources();
  if (stale.length === 0) return;
  const shown = stale.slice(0, 5).join(', ') + (stale.length > 5 ? `, and ${stale.length - 5} more` : '');
  throw new Error(
    `dist/ is older than src/ (${shown}): run npm run build. Tests that run bin/berth.js load dist/.`,
  );
}

export default async function setup(): Promise<() => Promise<void>> {
  await checkDistFresh();
  const saved = process.env.TMPDIR;
  const base = os.tmpdir();
  await sweepDeadRuns(base);
  const root = await mkdtemp(path.join(base, `${ROOT_PREFIX}${process.pid}-`));
  await writeFile(
    path.join(root, 'owner'),
    JSON.stringify({ pid: process.pid, start: await startTimeOf(process.pid) }),
  );
  process.env.TMPDIR = root;

  return async () => {
    try {
      const ours = async (): Promise<ProcessInfo[]> =>
        (await runProcesses(base)).filter((p) => p.root === root);
      // Sessions end their trees with a grace period; the last ones get up to 5 s.
      let left = await ours();
      for (
        const deadline = Date.now() + 5_000;
        left.length > 0 && Date.now() < deadline;
        left = await ours()
      ) {
        await sleep(100);
      }
      if (left.length > 0) {
        killAll(left);
        // Vitest only logs an error thrown here ("error during close") and exits 0: the code says it.
        process.exitCode = 1;
        throw new Error(
          `Berth tests left ${left.length} process(es) behind:\n${left.map((p) => `  ${p.pid} ${p.cmdline.slice(0, 200)}`).join('\n')}`,
        );
      }
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
      await rm(root, { recursive: true, force: true });
    }
  };
}
