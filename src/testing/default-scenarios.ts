/**
 * The scenarios the scripted model uses when it is given none (`berth serve`, `berth run` and
 * `berth mock-model` without a scenario file): enough plain-word requests to show, offline, that the agent
 * is real. A message can ask for a shell command, a file write, a file read, a long turn (to interrupt) and
 * a recall of the conversation so far; anything else gets the usual echo. docs/scripted-model.md lists them.
 *
 * Paths are relative to the session's working directory: the CLI's file tools want absolute paths, so the
 * replies prefix the directory the CLI reports (`{{cwd}}`). Patterns are anchored at both ends so that an
 * ordinary sentence which merely contains "read" or "recall" is echoed rather than acted on; everything after
 * a leading "run", though, is the command.
 */
import type { Scenario } from './scenario.js';

/** A file path as a person types it: no spaces, optionally in backticks. */
const PATH = '`?([^\\s`]+?)`?';
/**
 * The start of every pattern. The user's words arrive trimmed; the length cap bounds the backtracking of the
 * lazy groups below (quadratic in the length) on words that almost match, such as a long run of spaces.
 */
const POLITE = '^(?=[\\s\\S]{1,2000}$)(?:please\\s+)?';
/** The end of a request that names a file or a number: a sentence may end with a period. */
const END = '[.!]?$';

/** What `help` answers, and the summary `berth serve` logs. */
export const DEFAULT_SCENARIO_HELP = [
  "I am Berth's scripted model: the agent and its tools are real, only my replies are scripted. Say:",
  '- run COMMAND: a shell command, e.g. run `ls -la`',
  '- write "TEXT" to FILE: a file in the working directory (it may ask for a confirmation)',
  '- read FILE: a file in the working directory',
  '- wait N seconds: a long turn, to try an interrupt',
  '- what did I say?: your earlier messages in this conversation, resumed ones included',
  'Anything else is echoed back.',
].join('\n');

/**
 * The built-in scenarios, tried in this order: a failed tool call first, then one per request of
 * {@link DEFAULT_SCENARIO_HELP}. The write and read scenarios need the working directory the CLI states
 * (`{{cwd}}`); without it they are not used.
 */
export const DEFAULT_SCENARIOS: readonly Scenario[] = [
  {
    // First, so that a denied or failed tool call of any scenario below is reported, not described as done.
    name: 'tool-failed',
    match: { toolResult: { isError: true } },
    steps: [{ text: 'That did not work:\n{{toolResult}}' }],
  },
  {
    name: 'shell',
    match: {
      userText: { regex: `${POLITE}run\\s+(?:the\\s+command\\s+)?\`?([^\`]+?)\`?$`, flags: 'is' },
    },
    steps: [
      {
        text: 'Running `{{match.1}}`.',
        toolUse: {
          name: 'Bash',
          input: { command: '{{match.1}}', description: 'A command the user asked for' },
        },
      },
      { text: '`{{match.1}}` printed:\n{{toolResult}}' },
    ],
  },
  {
    name: 'write',
    match: {
      userText: {
        regex: `${POLITE}write\\s+"?(.*?)"?\\s+(?:to|into)\\s+(?:the\\s+file\\s+)?${PATH}${END}`,
        flags: 'is',
      },
    },
    steps: [
      {
        text: 'Writing to {{match.2}}.',
        toolUse: { name: 'Write', input: { file_path: '{{cwd}}/{{match.2}}', content: '{{match.1}}\n' } },
      },
      { text: 'Done: {{toolResult}}' },
    ],
  },
  {
    name: 'read',
    match: {
      userText: {
        regex: `${POLITE}(?:read|show(?:\\s+me)?|cat)\\s+(?!me[.!]?$)(?:the\\s+file\\s+)?${PATH}${END}`,
        flags: 'i',
      },
    },
    steps: [
      {
        text: 'Reading {{match.1}}.',
        toolUse: { name: 'Read', input: { file_path: '{{cwd}}/{{match.1}}' } },
      },
      { text: '{{match.1}} holds:\n{{toolResult}}' },
    ],
  },
  {
    name: 'wait',
    match: {
      userText: {
        regex: `${POLITE}(?:wait|sleep)\\s+(?:for\\s+)?(\\d{1,3})\\s*(?:s|secs?|seconds?)?${END}`,
        flags: 'i',
      },
    },
    steps: [
      {
        text: 'Waiting {{match.1}} seconds.',
        // The Bash tool's own limit is 2 minutes unless the call asks for more (at most 10).
        toolUse: {
          name: 'Bash',
          input: {
            command: 'for i in $(seq {{match.1}}); do sleep 1; done; echo waited {{match.1}} seconds',
            description: 'Wait as the user asked',
            timeout: 600_000,
          },
        },
      },
      { text: 'Done: I waited {{match.1}} seconds.' },
    ],
  },
  {
    name: 'recall',
    match: {
      userText: {
        regex: `${POLITE}(?:what\\s+(?:did|have)\\s+I\\s+(?:say|said|ask|asked|tell|told)(?:\\s+(?:you|so\\s+far|before|earlier))?|recall|remind\\s+me\\s+what\\s+I\\s+(?:said|asked))[?.!]?$`,
        flags: 'i',
      },
    },
    steps: [{ text: 'Earlier in this conversation you said:\n{{history}}' }],
  },
  {
    name: 'help',
    match: { userText: { regex: `${POLITE}(?:help|what\\s+can\\s+you\\s+do)[?.!]?$`, flags: 'i' } },
    steps: [{ text: DEFAULT_SCENARIO_HELP }],
  },
];
