/**
 * The host: its capacity, slots, sessions and warm pool (`GET /v1/hosts/self`) and, behind `berth
 * router`, every live host (`GET /v1/hosts`, which only the router answers; a host alone says 404).
 */
import { api } from '../api.js';
import { badge, bytes, count, facts, h, notice, replace, when } from '../dom.js';

function slotsMeter(slots, capacity) {
  const total = Number(capacity?.agents_per_host ?? 0);
  const used = Number(slots?.used ?? 0);
  return h(
    'div',
    { class: 'meter-row' },
    h('meter', {
      id: 'slots-meter',
      min: 0,
      max: Math.max(total, 1),
      value: used,
      high: Math.max(total, 1) * 0.8,
      'aria-label': 'Slots used',
    }),
    h('span', null, `${count(used)} of ${count(total)} slots used`),
  );
}

export function hostView(main) {
  const controller = new AbortController();
  const self = h('div', { class: 'host-grid' });
  const cluster = h('div');
  const status = h('div', { class: 'form-status', 'aria-live': 'polite' });
  const refresh = h('button', { type: 'button' }, 'Refresh');

  const load = async () => {
    refresh.disabled = true;
    replace(status);
    const signal = controller.signal;
    try {
      const info = await api('GET', '/v1/hosts/self', undefined, { signal });
      const { capacity = {}, slots = {}, sessions = {}, warm_pool: pool = {} } = info;
      replace(
        self,
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'h-capacity' },
          h('h2', { id: 'h-capacity' }, 'Capacity'),
          facts([
            ['Status', badge(info.status)],
            ['Agents per host', count(capacity.agents_per_host)],
            ['Host RAM', bytes(capacity.host_ram_bytes)],
            ['Overhead', bytes(capacity.overhead_bytes)],
            ['Per-session ceiling', bytes(capacity.session_ceiling_bytes)],
          ]),
        ),
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'h-slots' },
          h('h2', { id: 'h-slots' }, 'Slots'),
          slotsMeter(slots, capacity),
          facts([
            ['Used', count(slots.used)],
            ['Sessions', count(slots.sessions)],
            ['Spares', count(slots.spares)],
            ['Free', count(slots.free)],
          ]),
          h('h3', null, 'Sessions'),
          facts([
            ['Loaded', count(sessions.loaded)],
            ['Running', count(sessions.running)],
            ['Suspended', count(sessions.suspended)],
          ]),
        ),
        h(
          'section',
          { class: 'card', 'aria-labelledby': 'h-pool' },
          h('h2', { id: 'h-pool' }, 'Warm pool'),
          facts([
            ['Size', count(pool.size)],
            ['Parked', count(pool.parked)],
            ['Starting', count(pool.starting)],
            ['Prewarmed', count(pool.prewarmed)],
            ['Claimed', count(pool.claimed)],
            ['Refused', count(pool.refused)],
            ['Lost', count(pool.lost)],
          ]),
        ),
      );
    } catch (err) {
      if (err.name !== 'AbortError') replace(status, notice('error', err.message));
    }
    try {
      const { data } = await api('GET', '/v1/hosts', undefined, { signal });
      replace(
        cluster,
        h('h2', null, 'All hosts'),
        h(
          'table',
          { class: 'list' },
          h(
            'thead',
            null,
            h(
              'tr',
              null,
              ...['Host', 'URL', 'State', 'Capacity', 'Free slots', 'Last heartbeat'].map((t) =>
                h('th', { scope: 'col' }, t),
              ),
            ),
          ),
          h(
            'tbody',
            null,
            data.map((host) =>
              h(
                'tr',
                null,
                h('td', null, h('code', null, String(host.id))),
                h('td', null, String(host.url)),
                h('td', null, badge(host.state)),
                h('td', { class: 'num' }, count(host.capacity)),
                h('td', { class: 'num' }, count(host.slots_free)),
                h('td', null, when(host.last_heartbeat_at)),
              ),
            ),
          ),
        ),
      );
    } catch (err) {
      if (err.name === 'AbortError') return;
      replace(
        cluster,
        h('h2', null, 'All hosts'),
        err.status === 404
          ? h(
              'p',
              { class: 'hint' },
              'This server is not behind berth router: it shows only itself. Through the router, every live host is listed here.',
            )
          : notice('error', `The host list: ${err.message}`),
      );
    } finally {
      refresh.disabled = false;
    }
  };
  refresh.addEventListener('click', () => void load());

  main.append(
    h('div', { class: 'page-head' }, h('h1', null, 'Host'), refresh),
    h('p', { class: 'hint' }, 'The host that answered this request.'),
    status,
    self,
    cluster,
  );
  void load();
  return { close: () => controller.abort() };
}
