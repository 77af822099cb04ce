import { readFile } from 'node:fs/promises';
import { BerthError, describeError } from '../errors.js';
import { parseScenarios, type Scenario } from './scenario.js';

/** Reads and validates a scenario file. */
export async function loadScenarioFile(file: string, flag: string): Promise<Scenario[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new BerthError('invalid_config', `${flag}: cannot read ${file}: ${describeError(err)}`);
  }
  try {
    return parseScenarios(JSON.parse(text));
  } catch (err) {
    throw new BerthError('invalid_config', `${flag} ${file}: ${describeError(err)}`);
  }
}
