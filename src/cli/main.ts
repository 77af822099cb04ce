/**
 * `berth <command>`: the only place that reads `process.env`, prints to the terminal and installs
 * signal handlers.
 */
import { SERVE_OPTIONS, parseServeConfig } from '../config.js';
import { describeError, isBerthError } from '../errors.js';
import { runConformanceCommand } from './conformance.js';
import { runMockModelCommand } from './mock-model.js';
import { PLAN_HELP, runPlanCommand } from './plan.js';
import { runRunCommand } from './run.js';
import { runServeCommand } from './serve.js';

const USAGE = `Usage: berth <command> [options]

Commands:
  serve              run the server (npm start)
  run "PROMPT"       run one task and print its result
  mock-model         run the scripted Messages API server alone
  conformance URL    run the store conformance suites against a live backend
  plan               measure a session's RAM and size a host (agents per host)
  help [command]     show help

Run "berth help serve" for the server's options, "berth help plan" for sizing.`;

function serveHelp(): string {
  const lines = SERVE_OPTIONS.map((o) => `  --${o.flag.padEnd(22)} ${o.env.padEnd(28)} ${o.help}`);
  return `Usage: berth serve [options]\n\nEach option can also be set by its environment variable.\n\n${lines.join('\n')}`;
}

/** Runs a command; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve':
        if (rest.includes('--help')) return print(serveHelp());
        return await runServeCommand(parseServeConfig(rest, process.env));
      case 'run':
        return await runRunCommand(rest, process.env);
      case 'mock-model':
        return await runMockModelCommand(rest);
      case 'conformance':
        return await runConformanceCommand(rest);
      case 'plan':
        return await runPlanCommand(rest, process.env);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        return print(rest[0] === 'serve' ? serveHelp() : rest[0] === 'plan' ? PLAN_HELP : USAGE);
      default:
        process.stderr.write(`berth: unknown command ${JSON.stringify(command)}\n\n${USAGE}\n`);
        return 2;
    }
  } catch (err) {
    process.stderr.write(`berth: ${describeError(err)}\n`);
    return isBerthError(err, 'invalid_config') ? 2 : 1;
  }
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}
