/**
 * One session: its events, live (history first, then the stream; see sse.js for reconnects), a message
 * box, an Interrupt button, and Allow/Deny on each tool use the session waits on. The session waits on
 * exactly the `agent.tool_use` events named by the latest `session.status_idle` whose stop reason is
 * `requires_action`; the buttons go once a confirmation for it is seen or the turn goes on.
 */
import { api, seg } from '../api.js';
import { badge, count, facts, h, notice, replace, usd, when } from '../dom.js';
import { renderEvent } from '../events.js';
import { EventStream } from '../sse.js';
import { statusOf } from './sessions.js';

const STREAM_STATE = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Connection lost: reconnecting…',
  ended: 'Stream ended',
  failed: 'Stream failed',
};

/** Whether a list scrolled to (near) its bottom: new events then keep it there. */
function atBottom(el) {
  return el.scrollHeight - el.scrollTop - el.clientHeight < 40;
}

export function sessionView(main, id) {
  const base = `/v1/sessions/${seg(id)}`;
  const controller = new AbortController();
  /** Tool uses waiting for an answer, by event id. */
  let pending = new Set();
  let status = 'unknown';
  /** The status the stream last showed: newer than a record read while the store catches up. */
  let streamStatus;
  const statusCell = h('span');

  const title = h('h1', null, id);
  const info = h('div', { class: 'side-facts' });
  const streamState = h('span', { class: 'stream-state', role: 'status' }, STREAM_STATE.connecting);
  const errors = h('div', { class: 'form-status', 'aria-live': 'assertive' });
  const log = h('ol', { class: 'events', role: 'log', 'aria-label': 'Events', tabindex: 0 });
  const message = h('textarea', {
    id: 'message',
    rows: 2,
    placeholder: 'Enter sends, Shift+Enter starts a new line',
  });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');
  const interrupt = h('button', { type: 'button', class: 'danger' }, 'Interrupt');

  const showError = (err) => replace(errors, notice('error', err.message));

  const showStatus = () => {
    replace(statusCell, badge(status));
    const ended = status === 'terminated';
    message.disabled = ended;
    send.disabled = ended;
    interrupt.disabled = status !== 'running';
  };

  const showSession = (session) => {
    status = session.status === 'terminated' ? 'terminated' : (streamStatus ?? statusOf(session));
    replace(title, session.title || session.id);
    const usage = session.usage ?? {};
    replace(
      info,
      facts([
        ['Status', statusCell],
        ['Id', h('code', null, session.id)],
        ['Agent', session.agent ? `${session.agent.name} v${session.agent.version}` : '-'],
        ['Tokens', `${count(usage.input_tokens)} in / ${count(usage.output_tokens)} out`],
        ['Cost', usd(session.berth?.cost_usd)],
        ['Turns', String(session.berth?.turns ?? 0)],
        ['Pattern', session.berth?.pattern ?? '-'],
        ['Created', when(session.created_at)],
      ]),
    );
    showStatus();
  };

  const reload = async () => {
    try {
      showSession(await api('GET', base, undefined, { signal: controller.signal }));
    } catch (err) {
      if (err.name !== 'AbortError') showError(err);
    }
  };

  // A replayed history holds many idle events: the record is read once they stop coming.
  let reloadTimer;
  const scheduleReload = () => {
    clearTimeout(reloadTimer);
    reloadTimer = setTimeout(() => void reload(), 250);
  };

  const post = (events) => api('POST', `${base}/events`, { events });

  const confirm = async (toolUseId, result, buttons) => {
    for (const b of buttons) b.disabled = true;
    replace(errors);
    try {
      await post([{ type: 'user.tool_confirmation', tool_use_id: toolUseId, result }]);
    } catch (err) {
      for (const b of buttons) b.disabled = false;
      showError(err);
    }
  };

  /** Puts Allow/Deny on each pending tool use, and takes them off the others. */
  const renderPending = () => {
    for (const item of log.querySelectorAll('li[data-event-id]')) {
      const actions = item.querySelector('.actions');
      if (!actions) continue;
      const eventId = item.getAttribute('data-event-id');
      if (!pending.has(eventId)) {
        actions.replaceChildren();
        item.classList.remove('pending');
        continue;
      }
      if (actions.childElementCount > 0) continue;
      item.classList.add('pending');
      const allow = h('button', { type: 'button', class: 'primary' }, 'Allow');
      const deny = h('button', { type: 'button', class: 'danger' }, 'Deny');
      allow.addEventListener('click', () => void confirm(eventId, 'allow', [allow, deny]));
      deny.addEventListener('click', () => void confirm(eventId, 'deny', [allow, deny]));
      actions.append(h('span', { class: 'ask' }, 'Waiting for you: '), allow, deny);
    }
  };

  const onEvent = (_name, event, seq) => {
    if (!event || typeof event !== 'object') return;
    const follow = atBottom(log);
    log.append(renderEvent(event, seq));
    switch (event.type) {
      case 'session.status_idle':
        pending =
          event.stop_reason?.type === 'requires_action'
            ? new Set(event.stop_reason.event_ids ?? [])
            : new Set();
        status = pending.size > 0 ? 'requires_action' : 'idle';
        scheduleReload();
        break;
      case 'session.status_running':
        pending = new Set();
        status = 'running';
        break;
      case 'user.tool_confirmation':
        pending.delete(event.tool_use_id);
        break;
      case 'session.status_terminated':
        status = 'terminated';
        scheduleReload();
        break;
      case 'session.status_suspended':
        status = 'suspended';
        break;
      default:
    }
    if (String(event.type).startsWith('session.status')) streamStatus = status;
    showStatus();
    renderPending();
    if (follow) log.scrollTop = log.scrollHeight;
  };

  const stream = new EventStream(`${base}/events/stream`, {
    after: 0,
    onEvent,
    isFinal: (name) => name === 'session.status_terminated',
    onState: (state, err) => {
      streamState.textContent = STREAM_STATE[state] ?? state;
      streamState.dataset.state = state;
      if (err) showError(err);
    },
  });

  const sendMessage = async () => {
    const text = message.value;
    if (!text.trim()) return;
    send.disabled = true;
    replace(errors);
    try {
      await post([{ type: 'user.message', content: [{ type: 'text', text }] }]);
      message.value = '';
    } catch (err) {
      showError(err);
    } finally {
      send.disabled = status === 'terminated';
      message.focus();
    }
  };

  message.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void sendMessage();
    }
  });
  interrupt.addEventListener('click', async () => {
    replace(errors);
    try {
      await post([{ type: 'user.interrupt' }]);
    } catch (err) {
      showError(err);
    }
  });

  main.append(
    h(
      'div',
      { class: 'session-page' },
      h(
        'section',
        { class: 'stream-column', 'aria-labelledby': 'session-title' },
        h(
          'div',
          { class: 'page-head' },
          h('a', { href: '#/sessions', class: 'back' }, '← Sessions'),
          Object.assign(title, { id: 'session-title' }),
          streamState,
        ),
        log,
        errors,
        h(
          'form',
          {
            class: 'composer',
            onsubmit: (event) => {
              event.preventDefault();
              void sendMessage();
            },
          },
          h('label', { for: 'message' }, 'Message'),
          message,
          h('div', { class: 'composer-actions' }, send, interrupt),
        ),
      ),
      h('aside', { class: 'side', 'aria-label': 'Session details' }, info),
    ),
  );
  void reload().then(() => {
    if (!controller.signal.aborted) stream.start();
  });
  return {
    close() {
      controller.abort();
      clearTimeout(reloadTimer);
      stream.close();
    },
  };
}
