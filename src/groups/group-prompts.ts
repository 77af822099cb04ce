/**
 * What a group tells its agents: the paragraph appended to each agent's system prompt (who it is, who the
 * others are, what it has), and the message that gives an agent its turn in a round.
 */
import { READ_MESSAGES_TOOL, SEND_MESSAGE_TOOL } from './bus-mcp.js';
import { BROADCAST } from './message-bus.js';

/**
 * What each agent is told at the start of its turn in a round when the client gave no `content`.
 * `{{agent}}`, `{{round}}` and `{{rounds}}` are replaced, in a client's `content` too.
 */
export const DEFAULT_ROUND_MESSAGE =
  'Round {{round}} of {{rounds}} for agent {{agent}}: read your messages with read_messages, act, ' +
  'and send messages to the other agents with send_message.';

/** A round's message for one agent: `{{agent}}`, `{{round}}` and `{{rounds}}` replaced. */
export function renderRoundMessage(
  template: string,
  values: { agent: string; round: number; rounds: number },
): string {
  return template
    .replaceAll('{{agent}}', values.agent)
    .replaceAll('{{round}}', String(values.round))
    .replaceAll('{{rounds}}', String(values.rounds));
}

/** The paragraph appended to each agent's system prompt: who it is, who the others are, what it has. */
export function groupPrompt(agent: string, others: readonly string[], sharedDir: string | null): string {
  const lines = [
    `You are agent "${agent}" in a group of agents working together. The other agents are: ${others
      .map((o) => `"${o}"`)
      .join(', ')}.`,
    `Talk to them through two tools: ${SEND_MESSAGE_TOOL} (to: an agent's name, or "${BROADCAST}" for all of ` +
      `them; text: your message) and ${READ_MESSAGES_TOOL} (returns the messages sent to you, oldest first, ` +
      'each only once).',
  ];
  if (sharedDir !== null) {
    lines.push(
      `A directory shared by every agent of the group is at ${sharedDir}: files you write there, the ` +
        'others can read. Your working directory is your own; the other agents cannot see it.',
    );
  }
  return lines.join('\n');
}
