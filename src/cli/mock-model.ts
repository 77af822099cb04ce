import { HELP_OPTION, formatOptions, parseCommandArgs, type CommandOption } from './args.js';
import { BerthError } from '../errors.js';
import { startMockModel } from '../testing/index.js';
import { DEFAULT_SCENARIOS } from '../testing/default-scenarios.js';
import { loadScenarioFile } from '../testing/scenario-file.js';
import { waitForShutdownSignal } from './signals.js';

/** `berth mock-model`'s flags: its `parseArgs` options and its help. */
const MOCK_MODEL_OPTIONS = {
  port: { type: 'string', value: 'N', help: 'port to listen on (default 0: a free one)' },
  host: { type: 'string', value: 'ADDR', help: 'address to bind (default 127.0.0.1)' },
  script: {
    type: 'string',
    value: 'FILE',
    help: 'a JSON file holding an array of scenarios (default: the built-in ones)',
  },
  help: HELP_OPTION,
} as const satisfies Record<string, CommandOption>;

const HELP = `Usage: berth mock-model [options]

Runs the scripted Messages API server alone and prints its URL. Point a claude CLI (or Berth) at it with
ANTHROPIC_BASE_URL=<printed URL>. Without --script it answers the built-in scenarios (a message of
"help" lists them; docs/scripted-model.md) and echoes anything else as "Scripted reply to: ...".

${formatOptions(MOCK_MODEL_OPTIONS)}`;

export async function runMockModelCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args: [...argv],
    options: MOCK_MODEL_OPTIONS,
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const port = Number(values.port ?? '0');
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new BerthError('invalid_config', `--port: ${JSON.stringify(values.port)} is not a port (0-65535)`);
  }
  const scenarios = values.script ? await loadScenarioFile(values.script, '--script') : DEFAULT_SCENARIOS;
  const model = await startMockModel({ port, host: values.host ?? '127.0.0.1', scenarios });
  process.stdout.write(`${model.url}\n`);
  const source = values.script ? `from ${values.script}` : 'built in';
  process.stderr.write(
    `berth: scripted Messages API listening on ${model.url} (scenarios ${source}: ${model.scenarioNames.join(', ') || 'none'})\n`,
  );
  await waitForShutdownSignal();
  await model.close();
  return 0;
}
