/** Groups (the multi-agent pattern): the tenant's groups on this host, and one group's tagged stream. */
import { api, seg } from '../api.js';
import { badge, facts, h, notice, replace, when } from '../dom.js';
import { renderEvent } from '../events.js';
import { EventStream } from '../sse.js';

const STREAM_STATE = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Connection lost: reconnecting…',
  ended: 'Stream ended',
  failed: 'Stream failed',
};

function agentsOf(group) {
  return h(
    'ul',
    { class: 'inline-list' },
    (group.agents ?? []).map((agent) =>
      h(
        'li',
        null,
        h('a', { href: `#/sessions/${seg(agent.session_id)}` }, String(agent.name)),
        ' ',
        badge(agent.status),
      ),
    ),
  );
}

export function groupsView(main) {
  const controller = new AbortController();
  const tbody = h('tbody');
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const refresh = h('button', { type: 'button' }, 'Refresh');

  const load = async () => {
    refresh.disabled = true;
    replace(status);
    try {
      const { data } = await api('GET', '/v1/groups', undefined, { signal: controller.signal });
      replace(
        tbody,
        data.length > 0
          ? data.map((group) =>
              h(
                'tr',
                { 'data-group-id': group.id },
                h(
                  'td',
                  null,
                  h('a', { href: `#/groups/${seg(group.id)}` }, group.title || group.id),
                  group.title ? h('div', { class: 'sub' }, group.id) : null,
                ),
                h('td', null, badge(group.status)),
                h('td', null, agentsOf(group)),
                h('td', null, when(group.created_at)),
              ),
            )
          : h('tr', null, h('td', { colspan: 4, class: 'empty' }, 'No groups on this host.')),
      );
    } catch (err) {
      if (err.name !== 'AbortError') replace(status, notice('error', err.message));
    } finally {
      refresh.disabled = false;
    }
  };
  refresh.addEventListener('click', () => void load());

  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Groups'), refresh),
    h('p', { class: 'hint' }, 'Groups live in the memory of the host that runs them.'),
    status,
    h(
      'table',
      { class: 'list' },
      h('caption', { class: 'visually-hidden' }, 'Groups'),
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          h('th', { scope: 'col' }, 'Group'),
          h('th', { scope: 'col' }, 'Status'),
          h('th', { scope: 'col' }, 'Agents'),
          h('th', { scope: 'col' }, 'Created'),
        ),
      ),
      tbody,
    ),
  );
  void load();
  return { close: () => controller.abort() };
}

export function groupView(main, id) {
  const base = `/v1/groups/${seg(id)}`;
  const controller = new AbortController();
  const title = h('h1', { id: 'group-title' }, id);
  const info = h('div', { class: 'side-facts' });
  const streamState = h('span', { class: 'stream-state', role: 'status' }, STREAM_STATE.connecting);
  const errors = h('div', { class: 'form-status', 'aria-live': 'assertive' });
  const log = h('ol', { class: 'events', role: 'log', 'aria-label': 'Group events', tabindex: 0 });
  const agent = h('select', { id: 'group-agent' });
  const message = h('textarea', { id: 'group-message', rows: 2, placeholder: 'Enter sends' });
  const send = h('button', { type: 'submit', class: 'primary' }, 'Send');

  const showError = (err) => replace(errors, notice('error', err.message));

  const reload = async () => {
    try {
      const group = await api('GET', base, undefined, { signal: controller.signal });
      replace(title, group.title || group.id);
      replace(
        info,
        facts([
          ['Status', badge(group.status)],
          ['Id', h('code', null, group.id)],
          ['Agents', agentsOf(group)],
          [
            'Rounds',
            group.rounds?.active ? `${group.rounds.active.round} of ${group.rounds.active.rounds}` : 'none',
          ],
          ['Shared dir', group.shared_dir_path ? h('code', null, group.shared_dir_path) : 'none'],
          ['Created', when(group.created_at)],
        ]),
      );
      if (agent.childElementCount === 0) {
        replace(agent, ...(group.agents ?? []).map((a) => h('option', { value: a.name }, String(a.name))));
      }
    } catch (err) {
      if (err.name !== 'AbortError') showError(err);
    }
  };

  let reloadTimer;
  const stream = new EventStream(`${base}/events/stream`, {
    after: 0,
    isFinal: (name) => name === 'group.status_terminated',
    onEvent: (_name, event, seq) => {
      if (!event || typeof event !== 'object') return;
      const follow = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
      log.append(renderEvent(event, seq));
      if (follow) log.scrollTop = log.scrollHeight;
      if (String(event.type).startsWith('session.status') || String(event.type).startsWith('group.')) {
        clearTimeout(reloadTimer);
        reloadTimer = setTimeout(() => void reload(), 250);
      }
    },
    onState: (state, err) => {
      streamState.textContent = STREAM_STATE[state] ?? state;
      streamState.dataset.state = state;
      if (err) showError(err);
    },
  });

  const sendMessage = async () => {
    if (!message.value.trim()) return;
    send.disabled = true;
    replace(errors);
    try {
      await api('POST', `${base}/events`, {
        events: [{ type: 'user.message', agent: agent.value, content: message.value }],
      });
      message.value = '';
    } catch (err) {
      showError(err);
    } finally {
      send.disabled = false;
      message.focus();
    }
  };
  message.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      void sendMessage();
    }
  });

  main.append(
    h(
      'div',
      { class: 'session-page' },
      h(
        'section',
        { class: 'stream-column', 'aria-labelledby': 'group-title' },
        h(
          'div',
          { class: 'page-head' },
          h('a', { href: '#/groups', class: 'back' }, '← Groups'),
          title,
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
          h('div', { class: 'composer-to' }, h('label', { for: 'group-agent' }, 'To agent'), agent),
          h('label', { for: 'group-message' }, 'Message'),
          message,
          h('div', { class: 'composer-actions' }, send),
        ),
      ),
      h('aside', { class: 'side', 'aria-label': 'Group details' }, info),
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
