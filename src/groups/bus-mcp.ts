/**
 * The group's message bus as tools of one agent: an in-process MCP server (the SDK's
 * `createSdkMcpServer`), passed to that agent's `query()` as `options.mcpServers[server.name]`. The
 * server knows which agent it serves, so an agent can only send as itself and read its own inbox.
 *
 * The model sees the tools as `mcp__<server>__<tool>`; with the default server name these are
 * {@link SEND_MESSAGE_TOOL} and {@link READ_MESSAGES_TOOL}, which is also what `allowedTools` must list
 * for them to run without a permission prompt.
 *
 * Call this once per agent per `query()` (or `prewarm()`): the MCP server instance inside the config
 * serves one subprocess at a time, and a second query given the same config while the first is alive
 * starts with no bus server at all, silently (`system/init` lists `mcp_servers: []`; measured with
 * 0.3.330). Reusing it after the first query has ended works.
 */
import {
  createSdkMcpServer,
  tool,
  type McpSdkServerConfigWithInstance,
} from '@anthropic-ai/claude-agent-sdk';
import { z } from 'zod';
import { describeError, isBerthError } from '../errors.js';
import { BROADCAST, type MessageBus } from './message-bus.js';

/** The MCP server name, the middle part of the tool names the model sees. */
export const BUS_SERVER_NAME = 'berth_bus';

/** The tool names as the SDK registers them on the server. */
export const SEND_MESSAGE = 'send_message';
export const READ_MESSAGES = 'read_messages';

/** The tool names as the model (and `allowedTools`, `canUseTool`, hooks) sees them. */
export const SEND_MESSAGE_TOOL = `mcp__${BUS_SERVER_NAME}__${SEND_MESSAGE}`;
export const READ_MESSAGES_TOOL = `mcp__${BUS_SERVER_NAME}__${READ_MESSAGES}`;
/** Both bus tools, e.g. for `allowedTools`. */
export const BUS_TOOLS: readonly string[] = [SEND_MESSAGE_TOOL, READ_MESSAGES_TOOL];

/**
 * The most characters of messages (as JSON) one `read_messages` result carries, plus the first message
 * whatever its size; a reader with more waiting is told how many remain and calls again. The CLI swaps a
 * tool result over 50,000 characters for a preview and a file path (measured with 0.3.330); this stays
 * under that with room for the result's envelope.
 */
export const DEFAULT_READ_MAX_CHARS = 40_000;

export interface BusMcpServerOptions {
  /** The MCP server name; the tool names become `mcp__<name>__send_message` etc. @default 'berth_bus' */
  name?: string;
  /** See {@link DEFAULT_READ_MAX_CHARS}. @default 40000 */
  readMaxChars?: number;
}

/** The names the model sees for the bus tools of a server named `serverName`. */
export function busToolNames(serverName: string): { send: string; read: string } {
  return { send: `mcp__${serverName}__${SEND_MESSAGE}`, read: `mcp__${serverName}__${READ_MESSAGES}` };
}

type ToolResult = { content: Array<{ type: 'text'; text: string }>; isError?: boolean };

function textResult(text: string): ToolResult {
  return { content: [{ type: 'text', text }] };
}

/** A bus failure goes back to the model as an error result it can act on, not as a failed turn. */
function errorResult(err: unknown): ToolResult {
  const text = isBerthError(err) ? err.message : `The message bus failed: ${describeError(err)}`;
  return { content: [{ type: 'text', text }], isError: true };
}

/**
 * The MCP server config that gives `agentName` the bus tools. Pass it as
 * `options.mcpServers = { [config.name]: config }`.
 * @throws BerthError `not_found` when `agentName` is not on the bus.
 */
export function createBusMcpServer(
  bus: MessageBus,
  agentName: string,
  options: BusMcpServerOptions = {},
): McpSdkServerConfigWithInstance {
  // Fails now, at setup, rather than on the agent's first tool call.
  bus.unreadCount(agentName);
  const readMaxChars = options.readMaxChars ?? DEFAULT_READ_MAX_CHARS;

  const send = tool(
    SEND_MESSAGE,
    `Send a text message to another agent of your group. \`to\` is the agent's name, or "${BROADCAST}" ` +
      'for every other agent. The recipient sees it the next time it reads its messages.',
    {
      to: z.string().describe(`The recipient's agent name, or "${BROADCAST}" for all other agents`),
      text: z.string().describe('The message'),
    },
    (args) => {
      try {
        const message = bus.send(agentName, args.to, args.text);
        return Promise.resolve(
          textResult(`Message ${message.id} delivered to ${message.recipients.join(', ')}.`),
        );
      } catch (err) {
        return Promise.resolve(errorResult(err));
      }
    },
    { annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false } },
  );

  const read = tool(
    READ_MESSAGES,
    'Read the messages other agents of your group sent you, oldest first. Each message is returned ' +
      'once; `remaining` counts the messages still waiting (call again to get them).',
    {},
    () => {
      try {
        const result = bus.read(agentName, { maxJsonChars: readMaxChars });
        return Promise.resolve(textResult(JSON.stringify(result)));
      } catch (err) {
        return Promise.resolve(errorResult(err));
      }
    },
    // Not read-only: reading removes the messages from the inbox.
    { annotations: { readOnlyHint: false, destructiveHint: false, openWorldHint: false } },
  );

  return createSdkMcpServer({
    name: options.name ?? BUS_SERVER_NAME,
    version: '1.0.0',
    instructions:
      `You are agent "${agentName}" in a group of agents that talk through a message bus. ` +
      'Use send_message to write to another agent and read_messages to read what was sent to you.',
    tools: [send, read],
    // Without it the CLI defers MCP tools behind ToolSearch: they are missing from the request's
    // `tools`, and calling them before a ToolSearch fails (measured with 0.3.330). Two small tools are
    // cheaper to always offer than a search round trip per agent.
    alwaysLoad: true,
  });
}
