import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BerthError, describeError } from '../errors.js';

/** `parseArgs` whose failures (an unknown flag, a missing value) are `invalid_config`: exit code 2. */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new BerthError('invalid_config', describeError(err));
  }
}
