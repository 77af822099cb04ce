/**
 * `berth <command>`: the only place that reads `process.env`, prints to the terminal and installs
 * signal handlers. Each command's module loads when that command runs: `berth serve` never loads the
 * conformance suites or the scripted model's command (scripts/check-production-imports.ts).
 */
import { SERVE_OPTIONS, parseServeConfig } from '../config.js';
import { describeError, formatErrorForLog, isBerthError } from '../errors.js';
import { parseRouterConfig, routerHelp } from '../router/router-config.js';

/** The commands `main` dispatches: each one's arguments and summary, as the usage lists them. */
const COMMANDS = {
  serve: ['', 'run the server (npm start)'],
  router: ['', 'route one API over many hosts that share a PostgreSQL or Redis store'],
  run: ['"PROMPT"', 'run one task and print its result'],
  'mock-model': ['', 'run the scripted Messages API server alone'],
  conformance: ['URL', 'run the store conformance suites against a live backend'],
  plan: ['', "measure a session's RAM and size a host (agents per host)"],
  help: ['[command]', "show a command's help"],
} as const;

type Command = keyof typeof COMMANDS;

const USAGE = `Usage: berth <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, [args, summary]]) => `  ${`${name} ${args}`.padEnd(18)} ${summary}`)
  .join('\n')}

"berth help COMMAND" (or "berth COMMAND --help") lists a command's options.`;

function isCommand(name: string): name is Command {
  return Object.hasOwn(COMMANDS, name);
}

function serveHelp(): string {
  const lines = SERVE_OPTIONS.map((o) => `  --${o.flag.padEnd(22)} ${o.env.padEnd(28)} ${o.help}`);
  return `Usage: berth serve [options]\n\nEach option can also be set by its environment variable.\n\n${lines.join('\n')}`;
}

/** `--help` or `-h` among a command's arguments, for the commands whose parsers read env vars too. */
function asksForHelp(args: readonly string[]): boolean {
  return args.includes('--help') || args.includes('-h');
}

/** Not a command: exit 2, naming the commands there are. */
function unknownCommand(name: string): number {
  const names = Object.keys(COMMANDS).join(', ');
  process.stderr.write(
    `berth: unknown command ${JSON.stringify(name)}; the commands are ${names}\n\n${USAGE}\n`,
  );
  return 2;
}

/** Runs a command; resolves to the process exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'serve': {
        if (asksForHelp(rest)) return print(serveHelp());
        const config = parseServeConfig(rest, process.env);
        const { runServeCommand } = await import('./serve.js');
        return await runServeCommand(config);
      }
      case 'router': {
        if (asksForHelp(rest)) return print(routerHelp());
        const config = parseRouterConfig(rest, process.env);
        const { runRouterCommand } = await import('./router.js');
        return await runRouterCommand(config);
      }
      case 'run':
        return await (await import('./run.js')).runRunCommand(rest, process.env);
      case 'mock-model':
        return await (await import('./mock-model.js')).runMockModelCommand(rest);
      case 'conformance':
        return await (await import('./conformance.js')).runConformanceCommand(rest);
      case 'plan':
        return await (await import('./plan.js')).runPlanCommand(rest, process.env);
      case undefined:
      case 'help':
      case '--help':
      case '-h': {
        const [topic] = rest;
        if (topic === undefined || topic === 'help') return print(USAGE);
        if (!isCommand(topic)) return unknownCommand(topic);
        // Each command prints its own help, from the table it parses its flags with.
        return await main([topic, '--help']);
      }
      default:
        return unknownCommand(command);
    }
  } catch (err) {
    // A mistake of the caller (a bad flag) is its message; a failure of Berth or a backend keeps its
    // stack and causes, which is all there is to go on afterwards.
    const expected = isBerthError(err) && err.type !== 'api_error';
    process.stderr.write(`berth: ${expected ? describeError(err) : formatErrorForLog(err)}\n`);
    // Exit 2: the command as given cannot run (a bad flag, a data dir another berth holds).
    return isBerthError(err, 'invalid_config') || isBerthError(err, 'data_dir_locked') ? 2 : 1;
  }
}

function print(text: string): number {
  process.stdout.write(`${text}\n`);
  return 0;
}
