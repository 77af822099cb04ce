/**
 * One event of a session's (or a group's, or a task's) stream as a list item: who spoke, what was said
 * or run, and the status changes between. Shapes are docs/api.md's "Event types".
 */
import { clock, count, h, usd, when } from './dom.js';

/** The text of content blocks; a block that is not text is named. */
export function textOf(content) {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content
    .map((block) => (block?.type === 'text' ? String(block.text ?? '') : `[${block?.type ?? 'block'}]`))
    .join('');
}

function json(value) {
  try {
    return JSON.stringify(value, null, 2);
  } catch {
    return String(value);
  }
}

/** What a tool was asked to do, in one line where the tool has an obvious one. */
function toolSummary(name, input) {
  if (input && typeof input === 'object') {
    if (typeof input.command === 'string') return input.command;
    if (typeof input.file_path === 'string') return input.file_path;
    if (typeof input.pattern === 'string') return input.pattern;
    if (typeof input.url === 'string') return input.url;
  }
  return '';
}

const KIND = {
  'user.message': 'user',
  'user.interrupt': 'user',
  'user.tool_confirmation': 'user',
  'agent.message': 'agent',
  'agent.thinking': 'thinking',
  'agent.tool_use': 'tool',
  'agent.mcp_tool_use': 'tool',
  'agent.tool_result': 'result',
  'agent.mcp_tool_result': 'result',
  'session.error': 'error',
  'task.error': 'error',
  'group.error': 'error',
  'group.message': 'bus',
};

/** A short label for the event's kind, shown before it. */
function label(type) {
  switch (type) {
    case 'user.message':
      return 'You';
    case 'agent.message':
      return 'Agent';
    case 'agent.thinking':
      return 'Thinking';
    case 'agent.tool_use':
    case 'agent.mcp_tool_use':
      return 'Tool call';
    case 'agent.tool_result':
    case 'agent.mcp_tool_result':
      return 'Tool result';
    case 'user.tool_confirmation':
      return 'Confirmation';
    case 'user.interrupt':
      return 'Interrupt';
    default:
      return type;
  }
}

function body(event) {
  const type = event.type;
  switch (type) {
    case 'user.message':
    case 'agent.message':
      return h('p', { class: 'text' }, textOf(event.content));
    case 'agent.thinking':
      return h('p', { class: 'text' }, String(event.thinking ?? ''));
    case 'agent.tool_use':
    case 'agent.mcp_tool_use': {
      const name = type === 'agent.mcp_tool_use' ? `${event.mcp_server_name}/${event.name}` : event.name;
      const summary = toolSummary(event.name, event.input);
      return h(
        'div',
        null,
        h(
          'p',
          null,
          h('code', { class: 'tool-name' }, String(name ?? '?')),
          summary ? ' ' : null,
          summary ? h('code', { class: 'tool-summary' }, summary) : null,
          event.evaluated_permission === 'ask' ? h('span', { class: 'ask' }, ' asks first') : null,
        ),
        h('details', null, h('summary', null, 'Input'), h('pre', null, json(event.input))),
      );
    }
    case 'agent.tool_result':
    case 'agent.mcp_tool_result':
      return h(
        'pre',
        { class: event.is_error ? 'output is-error' : 'output' },
        textOf(event.content) || '(no output)',
      );
    case 'user.tool_confirmation':
      return h(
        'p',
        null,
        event.result === 'allow' ? 'Allowed' : 'Denied',
        event.deny_message ? `: ${event.deny_message}` : '',
      );
    case 'user.interrupt':
      return h('p', null, 'Stop the running turn');
    case 'session.status_idle': {
      const parts = [`idle (${event.stop_reason?.type ?? 'end_turn'})`];
      if (event.usage) {
        parts.push(
          `${count(event.usage.input_tokens)} in / ${count(event.usage.output_tokens)} out`,
          usd(event.usage.cost_usd),
        );
      }
      if (event.duration_ms !== undefined) parts.push(`${(event.duration_ms / 1000).toFixed(1)} s`);
      return h('p', null, parts.join(' · '));
    }
    case 'session.status_running':
      return h('p', null, 'running');
    case 'session.status_terminated':
    case 'session.status_suspended':
    case 'session.status_rescheduled':
      return h(
        'p',
        null,
        `${type.slice('session.status_'.length)}${event.reason ? ` (${event.reason})` : ''}`,
      );
    case 'session.error':
    case 'task.error':
    case 'group.error': {
      const e = event.error ?? {};
      return h(
        'p',
        null,
        `${e.code ?? e.type ?? 'error'}: ${e.message ?? ''}`,
        event.agent ? ` (${event.agent})` : '',
      );
    }
    case 'group.message':
      return h(
        'p',
        null,
        `${event.from} → ${event.to}: `,
        h('span', { class: 'text' }, String(event.text ?? '')),
      );
    case 'group.round_started':
      return h('p', null, `round ${event.round} of ${event.rounds}`);
    case 'group.rounds_finished':
      return h('p', null, `${event.completed} of ${event.rounds} rounds (${event.stop_reason})`);
    case 'group.replay_gap':
      return h(
        'p',
        null,
        `Events ${Number(event.after) + 1} to ${Number(event.first_seq) - 1} are no longer kept`,
      );
    default: {
      const { id: _id, type: _type, seq: _seq, processed_at: _at, agent: _agent, ...rest } = event;
      return Object.keys(rest).length > 0 ? h('pre', { class: 'output' }, json(rest)) : null;
    }
  }
}

/**
 * The list item of one event. `data-seq` is its seq in the stream; a tool use's item carries its id
 * (`data-event-id`) and an empty `.actions` box where confirmation buttons go.
 */
export function renderEvent(event, seq) {
  const type = String(event?.type ?? 'unknown');
  const kind = KIND[type] ?? (type.endsWith('error') ? 'error' : 'status');
  const item = h(
    'li',
    {
      class: `event event-${kind}`,
      'data-type': type,
      'data-seq': seq ?? event.seq,
      'data-event-id': event.id,
    },
    h(
      'div',
      { class: 'event-head' },
      h('span', { class: 'event-label' }, label(type)),
      event.agent ? h('span', { class: 'agent-tag' }, String(event.agent)) : null,
      h(
        'span',
        { class: 'event-meta', title: when(event.processed_at) },
        `#${seq ?? event.seq ?? '-'} · ${clock(event.processed_at)}`,
      ),
    ),
    body(event),
  );
  if (type === 'agent.tool_use' || type === 'agent.mcp_tool_use') {
    item.append(h('div', { class: 'actions' }));
  }
  return item;
}
