/**
 * `npm run bench [-- --only NAME] [-- --iterations N]`: runs the benchmark suites, prints their tables,
 * writes their raw numbers to `bench/results/NAME-DATE.json` and rewrites each suite's section of
 * docs/benchmarks.md (between `<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->`).
 * Progress goes to stderr, results to stdout.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { format, resolveConfig } from 'prettier';
import { cluster } from './cluster.js';
import { core } from './core.js';
import type { Suite } from './lib.js';
import { lifetimes } from './lifetimes.js';
import { observe } from './observe.js';
import { patterns } from './patterns.js';
import { proxy } from './proxy.js';
import { sandbox } from './sandbox.js';
import { stores } from './stores.js';

const SUITES: readonly Suite[] = [core, stores, lifetimes, patterns, proxy, sandbox, cluster, observe];
/** Every suite together must finish well within this (2 cores); a hang ends the run instead. */
const WATCHDOG_MS = 12 * 60_000;

const RESULTS_DIR = fileURLToPath(new URL('./results/', import.meta.url));
const DOC = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url));

const DOC_INTRO = `# Benchmarks

What Berth costs on top of the bare Claude Agent SDK. Every suite runs the real \`claude\` CLI against
Berth's scripted Messages API on 127.0.0.1 (\`berth/testing\`), so the numbers measure the CLI and Berth,
never a model or a network.

Run them with \`npm run bench\` (\`-- --only core\` for one suite, \`-- --iterations N\` to change the
number of measured iterations). Each run rewrites its suite's section below and keeps the raw numbers in
\`bench/results/\` (not committed).

Absolute milliseconds depend on the machine; what carries over is the comparison. Every number is paired
with a baseline (the bare SDK doing the same work) measured in the same run on the same machine, and the
targets are stated as a ratio or a difference against that baseline. Each section names the machine it
ran on: CPUs (\`nproc\`), total memory, Node and SDK versions, and the date.
`;

function markers(name: string): { start: string; end: string } {
  return { start: `<!-- bench:${name}:start -->`, end: `<!-- bench:${name}:end -->` };
}

/** The doc with the suite's section replaced, or appended when it has none yet. */
function withSection(doc: string, name: string, body: string): string {
  const { start, end } = markers(name);
  const section = `${start}\n\n${body.trim()}\n\n${end}`;
  const from = doc.indexOf(start);
  const to = doc.indexOf(end);
  if (from >= 0 && to > from) return doc.slice(0, from) + section + doc.slice(to + end.length);
  return `${doc.trimEnd()}\n\n${section}\n`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { only: { type: 'string' }, iterations: { type: 'string' } },
    strict: true,
  });
  const iterations = values.iterations === undefined ? undefined : Number(values.iterations);
  if (iterations !== undefined && !(Number.isInteger(iterations) && iterations > 0)) {
    throw new Error(`--iterations: ${values.iterations} is not a positive integer`);
  }
  const suites = SUITES.filter((s) => values.only === undefined || s.name === values.only);
  if (suites.length === 0) {
    throw new Error(`--only: no suite ${values.only}; suites: ${SUITES.map((s) => s.name).join(', ')}`);
  }

  const log = (line: string): void => void process.stderr.write(`${line}\n`);
  const watchdog = setTimeout(() => {
    log(`bench: still running after ${WATCHDOG_MS / 60_000} minutes; giving up`);
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  const missed: string[] = [];
  for (const suite of suites) {
    const started = performance.now();
    log(`bench: ${suite.name}`);
    const report = await suite.run({ iterations, log });
    const seconds = (performance.now() - started) / 1000;
    process.stdout.write(`\n## ${suite.name} (${seconds.toFixed(1)} s)\n\n${report.text}\n`);

    await mkdir(RESULTS_DIR, { recursive: true });
    const stamp = new Date().toISOString().replaceAll(':', '-');
    const file = `${RESULTS_DIR}${suite.name}-${stamp}.json`;
    await writeFile(file, `${JSON.stringify({ suite: suite.name, seconds, ...asObject(report.raw) })}\n`);

    const doc = await readFile(DOC, 'utf8').catch(() => DOC_INTRO);
    await writeFile(DOC, await formatMarkdown(withSection(doc, suite.name, report.markdown)));
    log(`bench: ${suite.name} done in ${seconds.toFixed(1)} s; wrote ${file} and docs/benchmarks.md`);
    missed.push(...report.missed.map((m) => `${suite.name}: ${m}`));
  }
  clearTimeout(watchdog);
  if (missed.length > 0) log(`bench: targets missed: ${missed.join('; ')}`);
}

/** As `prettier --write` would leave it, so that `npm run lint` stays clean after a run. */
async function formatMarkdown(text: string): Promise<string> {
  return format(text, { ...(await resolveConfig(DOC)), filepath: DOC });
}

function asObject(raw: unknown): Record<string, unknown> {
  return typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : { raw };
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exitCode = 1;
});
