/**
 * Scenarios script the mock model's replies. They are plain JSON so that a scenario file can drive
 * the mock model from the command line as well as from tests.
 *
 * A turn starts with a user message holding real text; each model request of the turn is answered
 * by the next step. The step index is derived from the request (assistant replies since the user's
 * words), never from server state, so retries, resumed sessions and concurrent sessions all work.
 */
import { z } from 'zod';
import { BerthError } from '../errors.js';

/** Failures to inject into one reply ({@link Reply.fault}) or into every request (`setFault`). */
export interface Fault {
  /** Delay between two SSE frames. @default 0 */
  chunkDelayMs?: number;
  /**
   * After `message_start`, wait this long before streaming the rest. `Infinity` (or any delay
   * too long for a timer) stalls until the client disconnects or the mock model closes.
   */
  stallMs?: number;
  /** Answer with this HTTP status and an Anthropic error body instead of a message. */
  status?: 429 | 529 | 500 | 503;
  /** With `status`: the `retry-after` header, in seconds. */
  retryAfterSeconds?: number;
  /**
   * Destroy the socket after this many SSE events (a `ping` after `message_start` counts);
   * 0 drops the connection before any response. A non-streaming request is dropped unanswered.
   */
  dropAfterEvents?: number;
  /** Replace the reply with a text reply of exactly this many bytes. */
  largeReplyBytes?: number;
  /**
   * A global fault applies to the next `times` requests it covers, then clears itself. A reply's
   * fault applies to the first `times` times that reply is sent (so a retry can succeed).
   * @default unlimited
   */
  times?: number;
  /**
   * Which `POST /v1/messages` requests a global fault covers: `main` requests offer tools (the
   * agent loop), `side` requests do not (e.g. title generation, which the CLI sends concurrently
   * with the first main request of a turn). Ignored on a reply's fault.
   * @default 'all'
   */
  scope?: 'all' | 'main' | 'side';
}

/** A `tool_use` block for the CLI to execute. */
export interface ToolUseSpec {
  /** The tool's name; it must be among the request's `tools`, else the default reply is sent. */
  name: string;
  /** The tool's input, a JSON object; its strings may hold the placeholders of {@link Reply.text}. */
  input: unknown;
  /** The block id. @default a fresh `toolu_mock_...` id per reply */
  id?: string;
}

/** A raw Messages API content block, e.g. `{ type: 'redacted_thinking', data: '...' }`. */
export interface ContentBlockSpec {
  type: string;
  [key: string]: unknown;
}

/** One scripted model reply. Blocks are sent as thinking, text, `content`, then tool uses. */
export interface Reply {
  /**
   * A text block. It, and every string inside a tool use's `input`, may hold placeholders, filled in from
   * the request being answered:
   * - `{{userText}}`: the user's words of the turn;
   * - `{{match.1}}`, `{{match.name}}`: a numbered or named capture group of the scenario's `userText`
   *   pattern (empty when the group did not take part);
   * - `{{cwd}}`: the session's working directory, as the CLI tells the model (the CLI's file tools want
   *   absolute paths); a step that uses it is not sent when the CLI stated none (the default reply is);
   * - `{{toolResult}}`: the text of the tool results the request carries;
   * - `{{history}}`: the user's earlier words in the conversation, one numbered line each, resumed turns
   *   included.
   * `{{toolResult}}` and `{{history}}` are cut at 4,000 characters. Anything else in double braces is left
   * as it is, and what a placeholder is filled with is not filled again.
   */
  text?: string;
  /** A thinking block (with a fake signature). */
  thinking?: string;
  /** One or more tool calls. */
  toolUse?: ToolUseSpec | ToolUseSpec[];
  /** Raw content blocks, for anything the other fields do not cover. */
  content?: ContentBlockSpec[];
  /** @default 'tool_use' when the reply holds a tool_use block, else 'end_turn' */
  stopReason?: string;
  /**
   * The token counts the reply reports, priced at the requested model's list price by the CLI and by
   * Berth's meter. @default per count, what the mock model's `usage` option says: 0, or an estimate
   */
  usage?: { input_tokens?: number; output_tokens?: number };
  /** Faults for this reply only; they override a global fault field by field. */
  fault?: Fault;
}

/** A regular expression in JSON form. */
export interface TextPattern {
  regex: string;
  /** RegExp flags; `g` and `y` are ignored because they make matching stateful. */
  flags?: string;
}

/** When a scenario answers. All given conditions must hold; an empty match answers any turn. */
export interface ScenarioMatch {
  /** The user's words of the turn contain this string, or match this pattern. */
  userText?: string | TextPattern;
  /**
   * A user message after the user's words holds a matching `tool_result`; the scenario's steps then
   * count from the latest such message, so its first step answers the request carrying the result. (A
   * result in the same message as the words answers the turn before: the CLI folds an interrupted
   * tool's result and the next prompt into one message.)
   */
  toolResult?: { contains?: string; isError?: boolean };
}

/** A scripted sequence of replies for the turns it matches. */
export interface Scenario {
  /** Shown in the request log as `matchedScenario`. @default `#<index>` */
  name?: string;
  match: ScenarioMatch;
  /** `steps[i]` answers the i-th model request of a matched turn; later requests get the default reply. */
  steps: Reply[];
  /** How many turns (per session and user message) the scenario may match. @default unlimited */
  times?: number;
  /** Also answer side requests (requests that offer no tools). @default false */
  sideRequests?: boolean;
}

const nonNegative = z.number().nonnegative();

/** Validates a {@link Fault}. */
const faultSchema = z.strictObject({
  chunkDelayMs: nonNegative.optional(),
  // JSON has no Infinity, so a scenario file says "stall forever" with a huge number.
  stallMs: z.union([nonNegative, z.literal(Number.POSITIVE_INFINITY)]).optional(),
  status: z.union([z.literal(429), z.literal(529), z.literal(500), z.literal(503)]).optional(),
  retryAfterSeconds: nonNegative.optional(),
  dropAfterEvents: z.number().int().nonnegative().optional(),
  largeReplyBytes: z.number().int().positive().optional(),
  times: z.number().int().positive().optional(),
  scope: z.enum(['all', 'main', 'side']).optional(),
});

const toolUseSchema = z.strictObject({
  name: z.string().min(1),
  input: z.record(z.string(), z.unknown()),
  id: z.string().min(1).optional(),
});

const replySchema = z.strictObject({
  text: z.string().optional(),
  thinking: z.string().optional(),
  toolUse: z.union([toolUseSchema, z.array(toolUseSchema)]).optional(),
  content: z.array(z.looseObject({ type: z.string().min(1) })).optional(),
  stopReason: z.string().min(1).optional(),
  usage: z
    .strictObject({
      input_tokens: z.number().int().nonnegative().optional(),
      output_tokens: z.number().int().nonnegative().optional(),
    })
    .optional(),
  fault: faultSchema.optional(),
});

const textPatternSchema = z
  .strictObject({ regex: z.string(), flags: z.string().optional() })
  .superRefine((pattern, ctx) => {
    try {
      new RegExp(pattern.regex, pattern.flags);
    } catch (err) {
      ctx.addIssue({
        code: 'custom',
        message: `not a valid regular expression: ${String(err)}`,
        path: ['regex'],
      });
    }
  });

const scenarioSchema = z.strictObject({
  name: z.string().min(1).optional(),
  match: z.strictObject({
    userText: z.union([z.string(), textPatternSchema]).optional(),
    toolResult: z
      .strictObject({ contains: z.string().optional(), isError: z.boolean().optional() })
      .optional(),
  }),
  steps: z.array(replySchema),
  times: z.number().int().positive().optional(),
  sideRequests: z.boolean().optional(),
});

const scenarioFileSchema = z.union([
  z.array(scenarioSchema),
  z.strictObject({ scenarios: z.array(scenarioSchema) }).transform((file) => file.scenarios),
]);

// Compile-time proof that what the schemas accept is assignable to the public types.
const _scenarioCheck: (s: z.output<typeof scenarioSchema>) => Scenario = (s) => s;
const _faultCheck: (f: z.output<typeof faultSchema>) => Fault = (f) => f;

function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `.${String(key)}`;
  return out;
}

/** Flattens zod issues to `path: message` lines; for a union, reports the branch that got furthest. */
function describeIssues(
  issues: readonly z.core.$ZodIssue[],
  root: string,
  prefix: PropertyKey[] = [],
): string[] {
  const lines: string[] = [];
  for (const issue of issues) {
    const path = [...prefix, ...issue.path];
    if (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const depth = (branch: readonly z.core.$ZodIssue[]): number =>
        Math.max(0, ...branch.map((i) => i.path.length));
      const best = issue.errors.reduce((a, b) => (depth(b) > depth(a) ? b : a));
      lines.push(...describeIssues(best, root, path));
      continue;
    }
    lines.push(`${root}${formatPath(path)}: ${issue.message}`);
  }
  return lines;
}

function validate<T>(schema: z.ZodType<T>, value: unknown, root: string): T {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const lines = describeIssues(result.error.issues, root);
  throw new BerthError('invalid_config', `invalid ${root}:\n  ${lines.join('\n  ')}`, {
    cause: result.error,
  });
}

/**
 * Validates the content of a scenario file: an array of scenarios, or `{ "scenarios": [...] }`.
 * @throws BerthError `invalid_config`, whose message names each bad field, e.g.
 *   `scenarios[0].steps[1].toolUse.name: Invalid input: expected string, received number`.
 */
export function parseScenarios(json: unknown): Scenario[] {
  return validate(scenarioFileSchema, json, 'scenarios');
}

/**
 * Validates one fault.
 * @throws BerthError `invalid_config` naming the bad field.
 */
export function parseFault(json: unknown): Fault {
  return validate(faultSchema, json, 'fault');
}
