/**
 * Tasks (the ephemeral pattern): run one, open one by id, see its status and result, download its
 * artifacts. Berth has no route that lists a tenant's tasks, so the list is the tasks run or opened in
 * this tab (kept in sessionStorage with the key); a running task is re-read every two seconds.
 */
import { api, download, seg } from '../api.js';
import { badge, bytes, h, notice, replace, usd, when } from '../dom.js';

const TASKS_ITEM = 'berth.console.tasks';
const FINAL = new Set(['succeeded', 'failed', 'timed_out']);
const POLL_MS = 2_000;

function rememberedIds() {
  try {
    const ids = JSON.parse(sessionStorage.getItem(TASKS_ITEM) ?? '[]');
    return Array.isArray(ids) ? ids.filter((id) => typeof id === 'string') : [];
  } catch {
    return [];
  }
}

function remember(id) {
  const ids = [id, ...rememberedIds().filter((known) => known !== id)].slice(0, 100);
  sessionStorage.setItem(TASKS_ITEM, JSON.stringify(ids));
}

function artifactPath(taskId, path) {
  return `/v1/tasks/${seg(taskId)}/artifacts/${String(path).split('/').map(seg).join('/')}`;
}

export function tasksView(main, openId) {
  /** @type {Map<string, any>} id -> record, or {id, error} when it cannot be read */
  const tasks = new Map();
  let timer;
  let closed = false;
  const tbody = h('tbody');
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });

  const showError = (err) => replace(status, notice('error', err.message));

  const artifactsOf = (task) => {
    if (!Array.isArray(task.artifacts) || task.artifacts.length === 0) return '-';
    return h(
      'ul',
      { class: 'artifacts' },
      task.artifacts.map((artifact) => {
        const name = String(artifact.path).split('/').pop() || 'artifact';
        const button = h(
          'button',
          { type: 'button', class: 'link', 'aria-label': `Download ${artifact.path}` },
          String(artifact.path),
        );
        button.addEventListener('click', async () => {
          replace(status);
          try {
            await download(artifactPath(task.id, artifact.path), name);
          } catch (err) {
            showError(err);
          }
        });
        return h('li', null, button, h('span', { class: 'sub' }, ` ${bytes(artifact.bytes)}`));
      }),
    );
  };

  const render = () => {
    const rows = [...tasks.values()].map((task) =>
      h(
        'tr',
        { 'data-task-id': task.id },
        h('td', null, h('code', null, task.id)),
        h(
          'td',
          null,
          task.status ? badge(task.status) : notice('error', task.error?.message ?? 'unreadable'),
        ),
        h(
          'td',
          { class: 'result' },
          task.error?.message ? `${task.error.type ?? 'error'}: ${task.error.message}` : (task.result ?? '-'),
          task.prompt ? h('div', { class: 'sub' }, `Prompt: ${task.prompt}`) : null,
        ),
        h('td', { class: 'num' }, task.status ? usd(task.cost_usd) : '-'),
        h('td', null, when(task.created_at)),
        h('td', null, artifactsOf(task)),
      ),
    );
    replace(
      tbody,
      rows.length > 0
        ? rows
        : h('tr', null, h('td', { colspan: 6, class: 'empty' }, 'No tasks run or opened in this tab yet.')),
    );
  };

  const read = async (id) => {
    try {
      tasks.set(id, await api('GET', `/v1/tasks/${seg(id)}`));
    } catch (err) {
      tasks.set(id, { id, error: { message: err.message } });
    }
  };

  const poll = async () => {
    timer = undefined;
    const running = [...tasks.values()].filter((t) => t.status && !FINAL.has(t.status));
    await Promise.all(running.map((t) => read(t.id)));
    if (closed) return;
    render();
    schedule();
  };

  const schedule = () => {
    if (closed || timer) return;
    if ([...tasks.values()].some((t) => t.status && !FINAL.has(t.status))) timer = setTimeout(poll, POLL_MS);
  };

  const add = (record) => {
    remember(record.id);
    tasks.delete(record.id);
    // The newest first.
    const rest = [...tasks];
    tasks.clear();
    tasks.set(record.id, record);
    for (const [id, task] of rest) tasks.set(id, task);
    render();
    schedule();
  };

  const prompt = h('textarea', { id: 'task-prompt', rows: 3, required: true });
  const tools = h('input', { id: 'task-tools', type: 'text', placeholder: 'Bash, Read, Write' });
  const run = h('button', { type: 'submit', class: 'primary' }, 'Run task');
  const runForm = h(
    'form',
    {
      class: 'card',
      onsubmit: async (event) => {
        event.preventDefault();
        run.disabled = true;
        replace(status);
        try {
          const allowed = tools.value
            .split(',')
            .map((t) => t.trim())
            .filter(Boolean);
          const body = { prompt: prompt.value };
          if (allowed.length > 0) body.agent = { allowed_tools: allowed };
          add(await api('POST', '/v1/tasks', body));
          prompt.value = '';
        } catch (err) {
          showError(err);
        } finally {
          run.disabled = false;
        }
      },
    },
    h('h2', null, 'Run a task'),
    h('label', { for: 'task-prompt' }, 'Prompt'),
    prompt,
    h(
      'label',
      { for: 'task-tools' },
      'Allowed tools (comma-separated CLI names; others that ask are denied)',
    ),
    tools,
    h('div', { class: 'form-actions' }, run),
  );

  const openInput = h('input', { id: 'task-id', type: 'text', placeholder: 'task_…', required: true });
  const openForm = h(
    'form',
    {
      class: 'card',
      onsubmit: async (event) => {
        event.preventDefault();
        const id = openInput.value.trim();
        if (!id) return;
        replace(status);
        try {
          add(await api('GET', `/v1/tasks/${seg(id)}`));
          openInput.value = '';
        } catch (err) {
          showError(err);
        }
      },
    },
    h('h2', null, 'Open a task'),
    h('label', { for: 'task-id' }, 'Task id'),
    openInput,
    h('div', { class: 'form-actions' }, h('button', { type: 'submit' }, 'Open')),
  );

  const refresh = h('button', { type: 'button' }, 'Refresh');
  refresh.addEventListener('click', async () => {
    refresh.disabled = true;
    await Promise.all([...tasks.keys()].map(read));
    refresh.disabled = false;
    render();
    schedule();
  });

  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Tasks'), refresh),
    h(
      'p',
      { class: 'hint' },
      'Berth has no route that lists tasks: this list holds the tasks run or opened in this tab.',
    ),
    h('div', { class: 'two-up' }, runForm, openForm),
    status,
    h(
      'table',
      { class: 'list' },
      h('caption', { class: 'visually-hidden' }, 'Tasks'),
      h(
        'thead',
        null,
        h(
          'tr',
          null,
          h('th', { scope: 'col' }, 'Task'),
          h('th', { scope: 'col' }, 'Status'),
          h('th', { scope: 'col' }, 'Result'),
          h('th', { scope: 'col', class: 'num' }, 'Cost'),
          h('th', { scope: 'col' }, 'Created'),
          h('th', { scope: 'col' }, 'Artifacts'),
        ),
      ),
      tbody,
    ),
  );

  render();
  const ids = rememberedIds();
  if (openId && !ids.includes(openId)) ids.unshift(openId);
  void Promise.all(ids.map(read)).then(() => {
    if (closed) return;
    // Remembered order: the newest first.
    const loaded = new Map(tasks);
    tasks.clear();
    for (const id of ids) if (loaded.has(id)) tasks.set(id, loaded.get(id));
    render();
    schedule();
  });
  return {
    close() {
      closed = true;
      clearTimeout(timer);
    },
  };
}
