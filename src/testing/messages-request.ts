/**
 * Reads a Messages API request body the way the `claude` CLI builds it, statelessly: everything the
 * mock model decides is derived from the request itself, so retries, resumed sessions and
 * concurrent sessions need no server-side memory.
 *
 * What the CLI sends (agent-sdk 0.3.330):
 * - `messages` may end with a `role: "system"` message (environment details) that later stays
 *   between the first user message and the first assistant message, so system messages are skipped.
 * - User content is a string or an array of blocks; the CLI prepends `<system-reminder>` text
 *   blocks to the user's words, and a tool result arrives as a user message of `tool_result` blocks.
 * - Main requests offer tools; side requests (title generation, ...) send `tools: []` or none.
 */

/** A `tool_result` block of a request, reduced to its text. */
export interface ToolResultSummary {
  tool_use_id: string;
  text: string;
  is_error: boolean;
}

/** What the mock model needs to know about one Messages API request. */
export interface AnalyzedRequest {
  messages: unknown[];
  model: string;
  stream: boolean;
  /** The request offers tools, i.e. it comes from the agent loop rather than a side task. */
  isMain: boolean;
  toolNames: ReadonlySet<string>;
  /** The user's words of the current turn: the last user message that holds real text. */
  userText: string | null;
  /** Index in `messages` of the message `userText` comes from; -1 when there is none. */
  userTextIndex: number;
  /** The `tool_result` blocks of the last user message. */
  toolResults: ToolResultSummary[];
  /** How many model requests of this turn came before this one (see {@link countAssistantTurns}). */
  stepIndex: number;
  /** The JSON schema of `output_config.format`, when the caller wants structured output. */
  outputSchema: unknown;
  /** The session's working directory as the CLI states it to the model; null when it does not. */
  cwd: string | null;
  /** The user's words before `userText` in this conversation, oldest first (earlier turns, resumed ones too). */
  earlierUserTexts: string[];
}

type JsonObject = Record<string, unknown>;

const SYSTEM_REMINDER = /<system-reminder>[\s\S]*?(?:<\/system-reminder>|$)/g;

/** `value` is a JSON object (not null, not an array). */
export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** `body` is a JSON object with a `messages` array, the minimum the mock model can answer. */
export function isMessagesRequestBody(body: unknown): body is JsonObject & { messages: unknown[] } {
  return isObject(body) && Array.isArray(body.messages);
}

function role(message: unknown): string | null {
  return isObject(message) && typeof message.role === 'string' ? message.role : null;
}

function contentBlocks(message: unknown): JsonObject[] {
  if (!isObject(message)) return [];
  if (typeof message.content === 'string') return [{ type: 'text', text: message.content }];
  return Array.isArray(message.content) ? message.content.filter(isObject) : [];
}

/** `text` without its `<system-reminder>` parts, trimmed. */
export function stripReminders(text: string): string {
  return text.replace(SYSTEM_REMINDER, '').trim();
}

/** Markers the CLI writes into user messages itself, e.g. after an interrupt. */
const CLI_MARKER = /^\[Request interrupted by user[^\]]*\]$/;

/** The words a person typed in a user message: its text blocks that are neither `<system-reminder>`s nor CLI markers. */
function userTextsOf(message: unknown): string[] {
  const texts: string[] = [];
  for (const block of contentBlocks(message)) {
    if (block.type !== 'text' || typeof block.text !== 'string') continue;
    const text = stripReminders(block.text);
    if (text !== '' && !CLI_MARKER.test(text)) texts.push(text);
  }
  return texts;
}

/**
 * The latest words a person typed in a user message; null when there are none (e.g. a message of tool
 * results only). Only the last block counts because the CLI folds consecutive user turns into one message
 * (after an interrupt, the interrupted prompt, a marker and the new prompt arrive together).
 */
export function userTextOf(message: unknown): string | null {
  return userTextsOf(message).at(-1) ?? null;
}

/** Every user's words up to and including `messages[index]`, oldest first. */
function userTextsUpTo(messages: readonly unknown[], index: number): string[] {
  const texts: string[] = [];
  for (const message of messages.slice(0, index + 1)) {
    if (role(message) === 'user') texts.push(...userTextsOf(message));
  }
  return texts;
}

const WORKING_DIRECTORY = 'Primary working directory:';

/** The directory an environment section states (a line `- Primary working directory: DIR`); null without one. */
function statedDirectory(text: string): string | null {
  // Line by line with string operations: the text may be long and is partly the caller's.
  for (const raw of text.split('\n')) {
    let line = raw.trim();
    if (line.startsWith('-')) line = line.slice(1).trimStart();
    if (!line.startsWith(WORKING_DIRECTORY)) continue;
    const dir = line.slice(WORKING_DIRECTORY.length).trim();
    if (dir !== '') return dir;
  }
  return null;
}

/**
 * The working directory the CLI told the model about; null when it told none. The CLI states it in an
 * environment section: a system message, or (a process fed by streaming input) a text block of the first
 * user message that holds only `<system-reminder>`s. Those are looked at first, and the system prompt (which
 * the API's caller writes) last; a block where a person typed words is never read.
 */
function workingDirectoryOf(body: JsonObject, messages: readonly unknown[]): string | null {
  const firstUser = messages.find((m) => role(m) === 'user');
  const reminderBlocks = contentBlocks(firstUser)
    .map((block) => (typeof block.text === 'string' ? block.text : ''))
    .filter((text) => text !== '' && stripReminders(text) === '');
  const sources = [
    ...messages.filter((m) => role(m) === 'system').map((m) => contentText(isObject(m) ? m.content : '')),
    ...reminderBlocks,
    contentText(body.system),
  ];
  for (const text of sources) {
    const dir = statedDirectory(text);
    if (dir !== null) return dir;
  }
  return null;
}

/** The text blocks of a message's (or a tool result's) content, joined with newlines. */
function contentText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .filter(isObject)
    .map((block) => (block.type === 'text' && typeof block.text === 'string' ? block.text : ''))
    .filter((text) => text !== '')
    .join('\n');
}

/** The `tool_result` blocks of one message. */
export function toolResultsOf(message: unknown): ToolResultSummary[] {
  return contentBlocks(message)
    .filter((block) => block.type === 'tool_result')
    .map((block) => ({
      tool_use_id: typeof block.tool_use_id === 'string' ? block.tool_use_id : '',
      text: contentText(block.content),
      is_error: block.is_error === true,
    }));
}

/**
 * How many assistant replies follow `messages[index]`. Consecutive assistant messages count once
 * (they are one reply split up) and system messages are transparent.
 */
export function countAssistantTurns(messages: readonly unknown[], index: number): number {
  let count = 0;
  let inAssistant = false;
  for (const message of messages.slice(index + 1)) {
    const r = role(message);
    if (r === 'assistant') {
      if (!inAssistant) count += 1;
      inAssistant = true;
    } else if (r === 'user') {
      inAssistant = false;
    }
  }
  return count;
}

/** Index of the last message with `role: "user"`, or -1. */
export function lastUserIndex(messages: readonly unknown[]): number {
  for (let i = messages.length - 1; i >= 0; i -= 1) if (role(messages[i]) === 'user') return i;
  return -1;
}

/** Index of the last user message at or after `from` for which `test` holds, or -1. */
export function findLastUserMessage(
  messages: readonly unknown[],
  from: number,
  test: (message: unknown) => boolean,
): number {
  for (let i = messages.length - 1; i >= Math.max(0, from); i -= 1) {
    if (role(messages[i]) === 'user' && test(messages[i])) return i;
  }
  return -1;
}

/** Derives everything the mock model needs from a request body that has a `messages` array. */
export function analyzeRequest(body: JsonObject & { messages: unknown[] }): AnalyzedRequest {
  const { messages } = body;
  const toolNames = new Set<string>();
  if (Array.isArray(body.tools)) {
    for (const tool of body.tools)
      if (isObject(tool) && typeof tool.name === 'string') toolNames.add(tool.name);
  }
  const userTextIndex = findLastUserMessage(messages, 0, (m) => userTextOf(m) !== null);
  const last = lastUserIndex(messages);
  const format = isObject(body.output_config) ? body.output_config.format : undefined;
  const spoken = userTextIndex >= 0 ? userTextsUpTo(messages, userTextIndex) : [];
  return {
    messages,
    model: typeof body.model === 'string' && body.model !== '' ? body.model : 'mock-model',
    stream: body.stream === true,
    isMain: toolNames.size > 0,
    toolNames,
    userText: userTextIndex >= 0 ? userTextOf(messages[userTextIndex]) : null,
    userTextIndex,
    toolResults: last >= 0 ? toolResultsOf(messages[last]) : [],
    stepIndex: countAssistantTurns(messages, userTextIndex),
    outputSchema: isObject(format) && format.type === 'json_schema' ? format.schema : undefined,
    cwd: workingDirectoryOf(body, messages),
    earlierUserTexts: spoken.slice(0, -1),
  };
}

/** A rough token count (4 characters a token), enough for clients that budget context. */
export function estimateTokens(value: unknown): number {
  if (value === undefined) return 0;
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return Math.max(1, Math.ceil(text.length / 4));
}
