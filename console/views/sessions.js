/** The tenant's sessions: a filterable table, a refresh, and a form that starts a new session. */
import { api, seg } from '../api.js';
import { badge, count, h, notice, replace, usd, when } from '../dom.js';

/** A session's status as the console shows it: Berth's finer one (requires_action, suspended) first. */
export function statusOf(session) {
  return session?.berth?.status ?? session?.status ?? 'unknown';
}

function agentOf(session) {
  if (session.agent) return `${session.agent.name ?? session.agent.id} v${session.agent.version ?? '?'}`;
  if (session.metadata?.group) return `${session.metadata.agent ?? '?'} in ${session.metadata.group}`;
  return '-';
}

function row(session) {
  const usage = session.usage ?? {};
  return h(
    'tr',
    { 'data-session-id': session.id },
    h(
      'td',
      null,
      h('a', { href: `#/sessions/${seg(session.id)}` }, session.title || session.id),
      session.title ? h('div', { class: 'sub' }, session.id) : null,
    ),
    h('td', null, badge(statusOf(session))),
    h('td', null, agentOf(session)),
    h('td', { class: 'num' }, `${count(usage.input_tokens)} / ${count(usage.output_tokens)}`),
    h('td', { class: 'num' }, usd(session.berth?.cost_usd)),
    h('td', null, when(session.created_at)),
  );
}

/** The new-session form: an agent and an environment of the tenant's, and a title. */
function newSessionForm(onCreated) {
  const agent = h('select', { id: 'new-agent', required: true });
  const environment = h('select', { id: 'new-environment', required: true });
  const title = h('input', { id: 'new-title', type: 'text', maxlength: 500 });
  const status = h('div', { class: 'form-status' });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create session');
  let loaded = false;
  const load = async () => {
    if (loaded) return;
    loaded = true;
    try {
      const [agents, environments] = await Promise.all([
        api('GET', '/v1/agents?limit=100'),
        api('GET', '/v1/environments?limit=100'),
      ]);
      replace(agent, ...agents.data.map((a) => h('option', { value: a.id }, `${a.name} (${a.id})`)));
      replace(
        environment,
        ...environments.data.map((e) => h('option', { value: e.id }, `${e.name} (${e.id})`)),
      );
      if (agents.data.length === 0 || environments.data.length === 0) {
        replace(status, notice('info', 'Create an agent and an environment with the API first.'));
        submit.disabled = true;
      }
    } catch (err) {
      loaded = false;
      replace(status, notice('error', err.message));
    }
  };
  const details = h(
    'details',
    { class: 'card new-session', ontoggle: () => details.open && void load() },
    h('summary', null, 'New session'),
    h(
      'form',
      {
        onsubmit: async (event) => {
          event.preventDefault();
          submit.disabled = true;
          replace(status);
          try {
            const body = { agent: agent.value, environment_id: environment.value };
            if (title.value.trim()) body.title = title.value.trim();
            const session = await api('POST', '/v1/sessions', body);
            onCreated(session);
          } catch (err) {
            replace(status, notice('error', err.message));
          } finally {
            submit.disabled = false;
          }
        },
      },
      h(
        'div',
        { class: 'fields' },
        h('div', null, h('label', { for: 'new-agent' }, 'Agent'), agent),
        h('div', null, h('label', { for: 'new-environment' }, 'Environment'), environment),
        h('div', null, h('label', { for: 'new-title' }, 'Title (optional)'), title),
        h('div', { class: 'form-actions' }, submit),
      ),
      status,
    ),
  );
  return details;
}

export function sessionsView(main) {
  /** @type {any[]} */
  let sessions = [];
  let nextPage = null;
  const controller = new AbortController();

  const statusFilter = h(
    'select',
    { id: 'filter-status' },
    ...['all', 'idle', 'running', 'requires_action', 'suspended', 'terminated'].map((s) =>
      h('option', { value: s }, s === 'all' ? 'All statuses' : s),
    ),
  );
  const textFilter = h('input', {
    id: 'filter-text',
    type: 'search',
    placeholder: 'id, title or agent',
  });
  const archived = h('input', { id: 'filter-archived', type: 'checkbox' });
  const refresh = h('button', { type: 'button' }, 'Refresh');
  const more = h('button', { type: 'button', hidden: true }, 'Load more');
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const tbody = h('tbody');
  const shown = h('p', { class: 'sub', 'aria-live': 'polite' });

  const render = () => {
    const wanted = statusFilter.value;
    const text = textFilter.value.trim().toLowerCase();
    const rows = sessions.filter((s) => {
      if (wanted !== 'all' && statusOf(s) !== wanted && s.status !== wanted) return false;
      if (!text) return true;
      return [s.id, s.title, s.agent?.name, s.agent?.id, s.metadata?.group]
        .filter(Boolean)
        .some((v) => String(v).toLowerCase().includes(text));
    });
    replace(
      tbody,
      rows.length > 0
        ? rows.map(row)
        : h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'No sessions match.')),
    );
    replace(shown, `${rows.length} of ${sessions.length} loaded sessions`);
    more.hidden = !nextPage;
  };

  const load = async (append) => {
    refresh.disabled = true;
    replace(status);
    try {
      const query = new URLSearchParams({ limit: '100' });
      if (archived.checked) query.set('include_archived', 'true');
      if (append && nextPage) query.set('page', nextPage);
      const page = await api('GET', `/v1/sessions?${query}`, undefined, { signal: controller.signal });
      sessions = append ? [...sessions, ...page.data] : page.data;
      nextPage = page.next_page;
      render();
    } catch (err) {
      if (err.name !== 'AbortError') replace(status, notice('error', err.message));
    } finally {
      refresh.disabled = false;
    }
  };

  statusFilter.addEventListener('change', render);
  textFilter.addEventListener('input', render);
  archived.addEventListener('change', () => void load(false));
  refresh.addEventListener('click', () => void load(false));
  more.addEventListener('click', () => void load(true));

  main.append(
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, 'Sessions'),
      newSessionForm((session) => {
        location.hash = `#/sessions/${seg(session.id)}`;
      }),
    ),
    h(
      'div',
      { class: 'toolbar', role: 'search' },
      h('label', { for: 'filter-status' }, 'Status'),
      statusFilter,
      h('label', { for: 'filter-text' }, 'Search'),
      textFilter,
      h('label', { class: 'check' }, archived, ' Include archived'),
      refresh,
    ),
    status,
    h(
      'table',
      { class: 'list' },
      h('caption', { class: 'visually-hidden' }, 'Sessions'),
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          h('th', { scope: 'col' }, 'Session'),
          h('th', { scope: 'col' }, 'Status'),
          h('th', { scope: 'col' }, 'Agent'),
          h('th', { scope: 'col', class: 'num' }, 'Tokens in / out'),
          h('th', { scope: 'col', class: 'num' }, 'Cost'),
          h('th', { scope: 'col' }, 'Created'),
        ),
      ),
      tbody,
    ),
    h('div', { class: 'list-foot' }, shown, more),
  );
  void load(false);
  return { close: () => controller.abort() };
}
