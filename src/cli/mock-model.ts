import { parseCommandArgs } from './args.js';
import { BerthError } from '../errors.js';
import { startMockModel } from '../testing/index.js';
import { loadScenarioFile } from '../testing/scenario-file.js';
import { waitForShutdownSignal } from './signals.js';

const HELP = `Usage: berth mock-model [--port N] [--host ADDR] [--script FILE]

Runs the scripted Messages API server alone. Point a claude CLI (or Berth) at it with
ANTHROPIC_BASE_URL=<printed URL>. --script takes a JSON file holding an array of scenarios.`;

export async function runMockModelCommand(argv: readonly string[]): Promise<number> {
  const { values } = parseCommandArgs({
    args: [...argv],
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      script: { type: 'string' },
      help: { type: 'boolean' },
    },
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
  const scenarios = values.script ? await loadScenarioFile(values.script, '--script') : [];
  const model = await startMockModel({ port, host: values.host ?? '127.0.0.1', scenarios });
  process.stdout.write(`${model.url}\n`);
  process.stderr.write(
    `berth: scripted Messages API listening on ${model.url} (${scenarios.length} scenario(s))\n`,
  );
  await waitForShutdownSignal();
  await model.close();
  return 0;
}
