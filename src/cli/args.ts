import { parseArgs, type ParseArgsConfig } from 'node:util';
import { BerthError, describeError } from '../errors.js';

/**
 * One flag of a command: what `parseArgs` reads (`type`, `multiple`, `short`) and the line its help
 * shows. A command's table of these is both its `parseArgs` options and its help's flag list, so the two
 * cannot drift apart.
 */
export interface CommandOption {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** The value's name in the help (`--out DIR`); none for a boolean. */
  value?: string;
  /** One line, or several joined with `\n`. */
  help: string;
}

/** The `--help` flag every command takes. */
export const HELP_OPTION = { type: 'boolean', short: 'h', help: 'show this help' } as const;

/** `parseArgs` whose failures (an unknown flag, a missing value) are `invalid_config`: exit code 2. */
export function parseCommandArgs<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    throw new BerthError('invalid_config', describeError(err));
  }
}

/** A command's flags as its help lists them, one aligned column of flags and one of explanations. */
export function formatOptions(options: Readonly<Record<string, CommandOption>>): string {
  const names = Object.entries(options).map(([flag, o]) => {
    const short = o.short === undefined ? '' : `-${o.short}, `;
    return `${short}--${flag}${o.value === undefined ? '' : ` ${o.value}`}`;
  });
  const width = Math.max(...names.map((n) => n.length)) + 2;
  return Object.values(options)
    .map((o, i) => {
      const [first, ...more] = o.help.split('\n');
      const rest = more.map((line) => `\n  ${' '.repeat(width)}${line}`).join('');
      return `  ${names[i]!.padEnd(width)}${first}${rest}`;
    })
    .join('\n');
}
