/**
 * `berth plan`: measures the RAM of a representative scripted session and prints the sizing formula's
 * answer for this host. It only parses and prints; the measuring is `measureSessionRam` (host/plan.ts).
 */
import { parseDuration, parseSize } from '../config.js';
import { BerthError } from '../errors.js';
import {
  DEFAULT_HEADROOM_PERCENT,
  DEFAULT_HOST_OVERHEAD,
  MAX_PLAN_SESSIONS,
  measureSessionRam,
  planSizing,
  type PlanResult,
  type SizingPlan,
} from '../host/plan.js';
import { GIB, detectHostRam } from '../host/sizing.js';
import { HELP_OPTION, formatOptions, parseCommandArgs, type CommandOption } from './args.js';
import { waitForShutdownSignal } from './signals.js';

/** `berth plan`'s flags: its `parseArgs` options and its help. */
const PLAN_OPTIONS = {
  turns: { type: 'string', value: 'N', help: 'turns per session (default 10)' },
  'tool-calls': {
    type: 'string',
    value: 'N',
    help: 'Bash tool calls per turn; each writes a 64 KiB file and lists the\nworkspace (default 2)',
  },
  sessions: {
    type: 'string',
    value: 'N',
    help: `sessions run at the same time, 1-${MAX_PLAN_SESSIONS} (default 1)`,
  },
  'host-ram': {
    type: 'string',
    value: 'SIZE',
    help: 'RAM of the host or container (default: detected, the cgroup limit if lower)',
  },
  'host-overhead': {
    type: 'string',
    value: 'SIZE',
    help: 'RAM the host keeps for Berth, its stores and the OS (default 1GiB)',
  },
  headroom: {
    type: 'string',
    value: 'PCT',
    help: `suggested ceiling = measured peak + PCT%, rounded up to 64 MiB (default ${DEFAULT_HEADROOM_PERCENT})`,
  },
  'sample-interval': {
    type: 'string',
    value: 'DURATION',
    help: "how often the trees' RSS is sampled (default 200ms)",
  },
  json: { type: 'boolean', help: 'print {"measurement": ..., "sizing": ...} as JSON' },
  help: HELP_OPTION,
} as const satisfies Record<string, CommandOption>;

export const PLAN_HELP = `Usage: berth plan [options]

Runs a representative scripted session (the real claude subprocess, the built-in scripted model, no
tokens) in a throwaway data dir, samples the RSS of its whole subprocess tree, and prints the measured
peak, a suggested per-session ceiling and the sizing formula
  agents per host = (host RAM - host overhead) / per-session ceiling

${formatOptions(PLAN_OPTIONS)}

Exit status: 0 when measured, 1 when the session failed, 2 for bad options, 130 when interrupted.`;

/** Parsed `berth plan` options, complete. */
interface PlanCommandOptions {
  turns: number;
  toolCalls: number;
  sessions: number;
  hostRamBytes: number;
  hostRamDetected: boolean;
  overheadBytes: number;
  headroomPercent: number;
  sampleIntervalMs: number;
  json: boolean;
}

function wholeNumber(
  value: string | undefined,
  fallback: number,
  flag: string,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value.trim());
  if (!/^\d+$/.test(value.trim()) || n < min || n > max) {
    throw new BerthError(
      'invalid_config',
      `${flag}: ${JSON.stringify(value)} is not a whole number from ${min} to ${max}`,
    );
  }
  return n;
}

function parsePlanOptions(argv: readonly string[]): PlanCommandOptions | 'help' {
  const { values } = parseCommandArgs({
    args: [...argv],
    allowPositionals: false,
    strict: true,
    options: PLAN_OPTIONS,
  });
  if (values.help) return 'help';
  const hostRam = values['host-ram'];
  const hostRamBytes = hostRam === undefined ? detectHostRam() : parseSize(hostRam, '--host-ram');
  if (hostRamBytes <= 0) throw new BerthError('invalid_config', '--host-ram must be more than 0');
  const overheadBytes =
    values['host-overhead'] === undefined
      ? DEFAULT_HOST_OVERHEAD
      : parseSize(values['host-overhead'], '--host-overhead');
  const headroomText = values.headroom?.trim().replace(/%$/, '');
  const headroomPercent = headroomText === undefined ? DEFAULT_HEADROOM_PERCENT : Number(headroomText);
  if (headroomText !== undefined && (!/^\d+(\.\d+)?$/.test(headroomText) || headroomPercent > 1000)) {
    throw new BerthError(
      'invalid_config',
      `--headroom: ${JSON.stringify(values.headroom)} is not a percentage from 0 to 1000 (e.g. 25)`,
    );
  }
  const sampleIntervalMs = parseDuration(values['sample-interval'] ?? '200ms', '--sample-interval');
  if (sampleIntervalMs <= 0) throw new BerthError('invalid_config', '--sample-interval must be more than 0');
  return {
    turns: wholeNumber(values.turns, 10, '--turns', 1, 1000),
    toolCalls: wholeNumber(values['tool-calls'], 2, '--tool-calls', 0, 50),
    sessions: wholeNumber(values.sessions, 1, '--sessions', 1, MAX_PLAN_SESSIONS),
    hostRamBytes,
    hostRamDetected: hostRam === undefined,
    overheadBytes,
    headroomPercent,
    sampleIntervalMs,
    json: values.json === true,
  };
}

export async function runPlanCommand(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const options = parsePlanOptions(argv);
  if (options === 'help') {
    process.stdout.write(`${PLAN_HELP}\n`);
    return 0;
  }
  const controller = new AbortController();
  void waitForShutdownSignal().then((signal) => controller.abort(new Error(`interrupted by ${signal}`)));
  if (!options.json) {
    const s = options.sessions === 1 ? '1 session' : `${options.sessions} sessions at once`;
    process.stderr.write(
      `berth plan: ${s}, ${options.turns} turn(s) of ${options.toolCalls} Bash tool call(s) each; ` +
        `tree RSS sampled every ${options.sampleIntervalMs} ms...\n`,
    );
  }
  let measurement: PlanResult;
  try {
    measurement = await measureSessionRam({
      turns: options.turns,
      toolCallsPerTurn: options.toolCalls,
      sessions: options.sessions,
      sampleIntervalMs: options.sampleIntervalMs,
      signal: controller.signal,
      ...(env.PATH !== undefined && { agentPath: env.PATH }),
    });
  } catch (err) {
    if (!controller.signal.aborted) throw err;
    process.stderr.write('berth plan: interrupted; the sessions, subprocesses and temp dir are removed\n');
    return 130;
  }
  const sizing = planSizing(measurement.peakMaxBytes, {
    hostRamBytes: options.hostRamBytes,
    overheadBytes: options.overheadBytes,
    headroomPercent: options.headroomPercent,
  });
  process.stdout.write(
    options.json
      ? `${JSON.stringify({ measurement, sizing }, null, 2)}\n`
      : report(measurement, sizing, options.hostRamDetected),
  );
  return 0;
}

const MIB = 1024 ** 2;

/** GiB with one decimal from 1 GiB up, whole MiB below. */
function formatBytes(bytes: number): string {
  return bytes >= GIB ? `${(bytes / GIB).toFixed(1)} GiB` : `${Math.round(bytes / MIB)} MiB`;
}

function formula(sizing: SizingPlan, ceiling: number, agents: number): string {
  return (
    `agents per host = (${formatBytes(sizing.hostRamBytes)} - ${formatBytes(sizing.overheadBytes)}) / ` +
    `${formatBytes(ceiling)} = ${agents}`
  );
}

function report(m: PlanResult, sizing: SizingPlan, hostRamDetected: boolean): string {
  const n = m.sessions.length;
  const pair = (max: number, avg: number): string =>
    n === 1 ? formatBytes(max) : `max ${formatBytes(max)}, mean ${formatBytes(avg)}`;
  const lines = [
    `Measured over ${n} session(s), ${m.turns} turn(s) of ${m.toolCallsPerTurn} Bash tool call(s), ` +
      `${(m.durationMs / 1000).toFixed(1)} s (RSS of each session's whole subprocess tree):`,
    `  peak RSS per session        ${pair(m.peakMaxBytes, m.peakMeanBytes)}`,
    `  RSS after the first turn    ${pair(m.afterFirstTurnMaxBytes, m.afterFirstTurnMeanBytes)}`,
    `  Berth itself (this process) ${formatBytes(m.hostProcessPeakBytes)} at its peak`,
    '',
    `Suggested per-session ceiling: ${formatBytes(sizing.suggestedCeilingBytes)} ` +
      `(peak + ${sizing.headroomPercent}%, rounded up to 64 MiB)`,
    '',
    `Host: ${formatBytes(sizing.hostRamBytes)} RAM${hostRamDetected ? ' (detected)' : ''}, ` +
      `${formatBytes(sizing.overheadBytes)} kept for Berth, its stores and the OS`,
    `  default ceiling:   ${formula(sizing, sizing.withDefaultCeiling.sessionCeilingBytes, sizing.withDefaultCeiling.agentsPerHost)}`,
    `  measured ceiling:  ${formula(sizing, sizing.withSuggestedCeiling.sessionCeilingBytes, sizing.withSuggestedCeiling.agentsPerHost)}`,
    '',
    'The scripted session measures the CLI and light tools only; builds, browsers or language servers in',
    "your agents' tools add their own memory: re-run with --turns and --tool-calls closer to your workload.",
  ];
  return `${lines.join('\n')}\n`;
}
