/**
 * The console's shell: sign-in, the navigation and the hash routes (`#/sessions`, `#/sessions/ID`,
 * `#/tasks`, `#/groups`, `#/groups/ID`, `#/host`). Each view is a function `(main, ...params)` that
 * fills `main` and returns `{close()}`, called when the reader goes elsewhere (it ends the view's streams
 * and timers).
 */
import { api, forgetKey, getKey, setKey } from './api.js';
import { h, notice, replace } from './dom.js';
import { groupView, groupsView } from './views/groups.js';
import { hostView } from './views/host.js';
import { sessionView } from './views/session.js';
import { sessionsView } from './views/sessions.js';
import { tasksView } from './views/tasks.js';

const main = /** @type {HTMLElement} */ (document.getElementById('main'));
const nav = /** @type {HTMLElement} */ (document.getElementById('nav'));
const signOut = /** @type {HTMLButtonElement} */ (document.getElementById('sign-out'));

/** @type {{close(): void} | undefined} */
let current;

function signInView(target) {
  const input = h('input', {
    id: 'api-key',
    name: 'api-key',
    type: 'password',
    autocomplete: 'off',
    spellcheck: 'false',
  });
  const status = h('div', { class: 'form-status' });
  const button = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'card sign-in',
      onsubmit: async (event) => {
        event.preventDefault();
        button.disabled = true;
        replace(status);
        setKey(input.value.trim());
        try {
          // Any call behind auth tells whether the key is good; this one is cheap.
          await api('GET', '/v1/sessions?limit=1');
          if (location.hash === target || !target) route();
          else location.hash = target;
        } catch (err) {
          forgetKey();
          replace(status, notice('error', err.message));
          input.select();
        } finally {
          button.disabled = false;
        }
      },
    },
    h('h1', null, 'Sign in'),
    h(
      'p',
      { class: 'hint' },
      'Berth answers for the tenant of your API key. A server started without API keys takes an empty one.',
    ),
    h('label', { for: 'api-key' }, 'API key'),
    input,
    h('div', { class: 'form-actions' }, button),
    status,
  );
  replace(main, form);
  input.focus();
  return { close() {} };
}

/** The view for the current hash; the sign-in form while there is no key. */
function route() {
  current?.close();
  current = undefined;
  const hash = location.hash || '#/sessions';
  const [, name = 'sessions', id] = hash.match(/^#\/([a-z]+)(?:\/(.+))?$/) ?? [];
  const signedIn = getKey() !== null;
  nav.hidden = !signedIn;
  signOut.hidden = !signedIn;
  if (!signedIn) {
    current = signInView(hash);
    return;
  }
  for (const link of nav.querySelectorAll('a')) {
    if (link.dataset.view === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  main.replaceChildren();
  const param = id === undefined ? undefined : decodeURIComponent(id);
  switch (name) {
    case 'sessions':
      current = param ? sessionView(main, param) : sessionsView(main);
      break;
    case 'tasks':
      current = tasksView(main, param);
      break;
    case 'groups':
      current = param ? groupView(main, param) : groupsView(main);
      break;
    case 'host':
      current = hostView(main);
      break;
    default:
      main.append(notice('error', `No page ${hash}`));
  }
}

signOut.addEventListener('click', () => {
  forgetKey();
  location.hash = '#/sessions';
  route();
});
window.addEventListener('hashchange', route);
route();
