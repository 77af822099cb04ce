/**
 * Chooses the mock model's reply to a Messages API request: the first matching scenario's step for
 * this request, or a deterministic default reply. The only state kept is which turns a scenario with
 * `times` has claimed and how often a reply's fault has fired; the step index comes from the request.
 */
import type { WireContentBlock } from './anthropic-sse.js';
import {
  countAssistantTurns,
  findLastUserMessage,
  stripReminders,
  toolResultsOf,
  type AnalyzedRequest,
  type ToolResultSummary,
} from './messages-request.js';
import { parseScenarios, type Fault, type Reply, type Scenario, type TextPattern } from './scenario.js';

/** The reply to send, before faults that change its shape (largeReplyBytes) are applied. */
export interface ReplyPlan {
  content: WireContentBlock[];
  stopReason: string;
  usage: Reply['usage'];
  /** The reply's own fault, when it still applies. */
  fault: Fault | undefined;
  /** The scenario whose step is sent; null for the default reply. */
  scenarioName: string | null;
  /** The step index the reply was chosen for. */
  stepIndex: number;
}

interface Entry {
  scenario: Scenario;
  name: string;
  pattern: RegExp | null;
  /** Turns this scenario answered, tracked only when it has `times`. */
  turns: Set<string>;
}

const MAX_ECHO_CHARS = 200;
const SCHEMA_DEPTH_LIMIT = 8;
const MAX_FILLED_CHARS = 4_000;
const PLACEHOLDER = /\{\{(userText|cwd|toolResult|history|match\.[A-Za-z0-9_]+)\}\}/g;

/** What a reply's placeholders are filled in from (see `Reply.text` in scenario.ts). */
interface TemplateValues {
  request: AnalyzedRequest;
  /** The scenario's `userText` pattern matched against the user's words; null without a pattern. */
  match: RegExpExecArray | null;
}

/** `text` cut to {@link MAX_FILLED_CHARS} characters (code points, so no pair is split), marked with `…`. */
function truncate(text: string): string {
  if (text.length <= MAX_FILLED_CHARS) return text;
  const points = [...text];
  return points.length > MAX_FILLED_CHARS ? `${points.slice(0, MAX_FILLED_CHARS).join('')}…` : text;
}

function historyLines(texts: readonly string[]): string {
  if (texts.length === 0) return '(nothing before this message)';
  return texts.map((text, i) => `${i + 1}. ${text}`).join('\n');
}

function placeholderValue(name: string, { request, match }: TemplateValues): string {
  switch (name) {
    case 'userText':
      return request.userText ?? '';
    case 'cwd':
      return request.cwd ?? '';
    case 'history':
      return truncate(historyLines(request.earlierUserTexts));
    case 'toolResult':
      // The CLI appends `<system-reminder>`s to some results; they are not the tool's output.
      return truncate(request.toolResults.map((result) => stripReminders(result.text)).join('\n'));
    default: {
      const group = name.slice('match.'.length);
      const value = /^\d+$/.test(group) ? match?.[Number(group)] : match?.groups?.[group];
      return value ?? '';
    }
  }
}

function fill(template: string, values: TemplateValues): string {
  return template.replace(PLACEHOLDER, (_, name: string) => placeholderValue(name, values));
}

/** `value` with every string inside it filled in. */
function fillDeep(value: unknown, values: TemplateValues): unknown {
  if (typeof value === 'string') return fill(value, values);
  if (Array.isArray(value)) return value.map((item) => fillDeep(item, values));
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, fillDeep(item, values)]));
  }
  return value;
}

function compile(pattern: string | TextPattern | undefined): RegExp | null {
  if (pattern === undefined || typeof pattern === 'string') return null;
  // Without g and y, RegExp#test keeps no lastIndex state between requests.
  return new RegExp(pattern.regex, (pattern.flags ?? '').replace(/[gy]/g, ''));
}

function toolResultMatches(
  result: ToolResultSummary,
  want: { contains?: string; isError?: boolean },
): boolean {
  if (want.contains !== undefined && !result.text.includes(want.contains)) return false;
  if (want.isError !== undefined && result.is_error !== want.isError) return false;
  return true;
}

/** The default reply's text: an echo of the user's words, so tests can tell turns apart. */
export function defaultReplyText(userText: string | null): string {
  if (userText === null) return 'Scripted reply.';
  return `Scripted reply to: ${[...userText].slice(0, MAX_ECHO_CHARS).join('')}`;
}

/**
 * A value that satisfies simple JSON schemas (objects, primitives, enums), so that a side request
 * asking for structured output (the CLI's title generation) gets parseable JSON.
 */
export function sampleForSchema(schema: unknown, text: string, depth = 0): unknown {
  if (typeof schema !== 'object' || schema === null || depth > SCHEMA_DEPTH_LIMIT) return text;
  const s = schema as Record<string, unknown>;
  if ('const' in s) return s.const;
  if (Array.isArray(s.enum) && s.enum.length > 0) return s.enum[0];
  const type = Array.isArray(s.type) ? (s.type[0] as unknown) : s.type;
  switch (type) {
    case 'object': {
      const out: Record<string, unknown> = {};
      const props = typeof s.properties === 'object' && s.properties !== null ? s.properties : {};
      for (const [key, sub] of Object.entries(props)) out[key] = sampleForSchema(sub, text, depth + 1);
      return out;
    }
    case 'array':
      return [];
    case 'number':
    case 'integer':
      return 0;
    case 'boolean':
      return false;
    case 'null':
      return null;
    default:
      return text;
  }
}

/** A deterministic ASCII text of exactly `bytes` bytes. */
export function fillerText(bytes: number): string {
  const line = 'The quick brown fox jumps over the lazy dog. 0123456789\n';
  return line.repeat(Math.ceil(bytes / line.length)).slice(0, bytes);
}

// Not a real signature: the CLI sends it back verbatim and the mock model never checks it.
function fakeSignature(thinking: string): string {
  return Buffer.from(`mock-signature:${thinking.length}`).toString('base64');
}

/** Scenario matching and reply rendering for one mock model. */
export class ScenarioMatcher {
  #entries: Entry[] = [];
  readonly #faultUses = new WeakMap<Reply, number>();
  readonly #newToolUseId: () => string;

  /** @param newToolUseId makes an id for a tool_use block that has none; ids must be unique. */
  constructor(scenarios: readonly Scenario[], newToolUseId: () => string) {
    this.#newToolUseId = newToolUseId;
    this.set(scenarios);
  }

  /** The scenarios' names (`#<index>` for an unnamed one), in the order they are tried. */
  get names(): string[] {
    return this.#entries.map((entry) => entry.name);
  }

  /** Replaces all scenarios (and forgets their `times` counts). */
  set(scenarios: readonly Scenario[]): void {
    const parsed = parseScenarios(scenarios);
    this.#entries = [];
    for (const scenario of parsed) this.#push(scenario);
  }

  /** Appends one scenario; it is tried after the existing ones. */
  add(scenario: Scenario): void {
    const [parsed] = parseScenarios([scenario]);
    if (parsed) this.#push(parsed);
  }

  #push(scenario: Scenario): void {
    this.#entries.push({
      scenario,
      name: scenario.name ?? `#${this.#entries.length}`,
      pattern: compile(scenario.match.userText),
      turns: new Set(),
    });
  }

  /** The reply to `request`; `sessionId` tells apart turns of different sessions for `times`. */
  plan(request: AnalyzedRequest, sessionId: string | null): ReplyPlan {
    for (const entry of this.#entries) {
      const { scenario } = entry;
      if (!request.isMain && scenario.sideRequests !== true) continue;

      const { userText, toolResult } = scenario.match;
      let match: RegExpExecArray | null = null;
      if (userText !== undefined) {
        if (request.userText === null) continue;
        if (typeof userText === 'string') {
          if (!request.userText.includes(userText)) continue;
        } else {
          match = entry.pattern?.exec(request.userText) ?? null;
          if (match === null) continue;
        }
      }

      let anchor = request.userTextIndex;
      let turnKey = `u${anchor}:${request.userText ?? ''}`;
      if (toolResult !== undefined) {
        // Only results after the user's words: a result in the same message answers a tool use of the
        // turn before (the CLI folds an interrupted tool's result and the next prompt into one message).
        const from = request.userTextIndex + 1;
        anchor = findLastUserMessage(request.messages, from, (m) =>
          toolResultsOf(m).some((r) => toolResultMatches(r, toolResult)),
        );
        if (anchor < 0) continue;
        turnKey = `t${anchor}:${toolResultsOf(request.messages[anchor])
          .map((r) => r.tool_use_id)
          .join(',')}`;
      }

      if (scenario.times !== undefined) {
        // Keyed by session and anchor message, so a retry or the next step of a claimed turn is
        // still answered while a new turn past `times` is not.
        const key = `${sessionId ?? ''}\u0000${turnKey}`;
        if (!entry.turns.has(key)) {
          if (entry.turns.size >= scenario.times) continue;
          entry.turns.add(key);
        }
      }

      const stepIndex = countAssistantTurns(request.messages, anchor);
      const reply = scenario.steps[stepIndex];
      if (reply === undefined) return this.#defaultPlan(request, stepIndex);
      // A path made from a directory the CLI did not state would point at `/`: the step is not sent.
      if (request.cwd === null && JSON.stringify(reply).includes('{{cwd}}')) {
        return this.#defaultPlan(request, stepIndex);
      }
      const content = this.#render(reply, { request, match });
      // The CLI fails a turn whose tool_use names a tool it did not offer.
      const offered = content.every(
        (block) =>
          block.type !== 'tool_use' || (typeof block.name === 'string' && request.toolNames.has(block.name)),
      );
      if (!offered) return this.#defaultPlan(request, stepIndex);
      return {
        content,
        stopReason:
          reply.stopReason ?? (content.some((b) => b.type === 'tool_use') ? 'tool_use' : 'end_turn'),
        usage: reply.usage,
        fault: this.#takeFault(reply),
        scenarioName: entry.name,
        stepIndex,
      };
    }
    return this.#defaultPlan(request, request.stepIndex);
  }

  #takeFault(reply: Reply): Fault | undefined {
    const { fault } = reply;
    if (fault?.times === undefined) return fault;
    const uses = this.#faultUses.get(reply) ?? 0;
    this.#faultUses.set(reply, uses + 1);
    return uses < fault.times ? fault : undefined;
  }

  #render(reply: Reply, values: TemplateValues): WireContentBlock[] {
    const blocks: WireContentBlock[] = [];
    if (reply.thinking !== undefined) {
      blocks.push({ type: 'thinking', thinking: reply.thinking, signature: fakeSignature(reply.thinking) });
    }
    if (reply.text !== undefined) {
      blocks.push({ type: 'text', text: fill(reply.text, values) });
    }
    for (const block of reply.content ?? []) blocks.push({ ...block });
    const toolUses =
      reply.toolUse === undefined ? [] : Array.isArray(reply.toolUse) ? reply.toolUse : [reply.toolUse];
    for (const use of toolUses) {
      const input = fillDeep(use.input, values);
      blocks.push({ type: 'tool_use', id: use.id ?? this.#newToolUseId(), name: use.name, input });
    }
    return blocks;
  }

  #defaultPlan(request: AnalyzedRequest, stepIndex: number): ReplyPlan {
    const text = defaultReplyText(request.userText);
    const body =
      request.outputSchema === undefined ? text : JSON.stringify(sampleForSchema(request.outputSchema, text));
    return {
      content: [{ type: 'text', text: body }],
      stopReason: 'end_turn',
      usage: undefined,
      fault: undefined,
      scenarioName: null,
      stepIndex,
    };
  }
}
