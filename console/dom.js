/**
 * Building the page from data without ever parsing data as HTML: every string becomes a text node or an
 * attribute value. Nothing in the console sets innerHTML.
 */

/**
 * An element: `h('a', {href: '#x', class: 'link'}, 'text', child)`. `on<event>` attributes become
 * listeners, `class` the class name, `false`/`null`/`undefined` attributes and children are skipped.
 * @param {string} tag
 * @param {Record<string, unknown> | null} [attrs]
 * @param {...(Node | string | number | null | undefined | false | Array<Node | string | null | undefined | false>)} children
 * @returns {HTMLElement}
 */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      el.addEventListener(name.slice(2), /** @type {EventListener} */ (value));
    } else if (name === 'class') {
      el.className = String(value);
    } else if (value === true) {
      el.setAttribute(name, '');
    } else {
      el.setAttribute(name, String(value));
    }
  }
  append(el, children);
  return el;
}

/** Appends children (strings as text). */
export function append(el, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    el.append(typeof child === 'string' || typeof child === 'number' ? String(child) : child);
  }
  return el;
}

/** Replaces an element's children. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

/** A date as the reader's local date and time; `-` when absent. */
export function when(iso) {
  if (!iso) return '-';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}

/** The time of day of a date, to the second; `-` when absent. */
export function clock(iso) {
  if (!iso) return '-';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleTimeString();
}

/** Dollars, to a tenth of a cent when small. */
export function usd(value) {
  const n = Number(value ?? 0);
  if (!Number.isFinite(n)) return '-';
  return n < 1 && n > 0 ? `$${n.toFixed(4)}` : `$${n.toFixed(2)}`;
}

/** An integer with thousands separators. */
export function count(value) {
  const n = Number(value ?? 0);
  return Number.isFinite(n) ? n.toLocaleString() : '-';
}

/** Bytes in binary units. */
export function bytes(value) {
  let n = Number(value ?? 0);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`;
}

/** A status badge; its class names the status so the stylesheet colours it. */
export function badge(status) {
  const text = String(status ?? 'unknown');
  return h('span', { class: `badge status-${text.replace(/[^a-z_]/gi, '')}` }, text);
}

/** A labelled value list (`<dl>`). */
export function facts(pairs) {
  return h(
    'dl',
    { class: 'facts' },
    pairs.flatMap(([term, value]) => [h('dt', null, term), h('dd', null, value ?? '-')]),
  );
}

/** A message in the page's status area, read out by screen readers. */
export function notice(kind, text) {
  return h('p', { class: `notice notice-${kind}`, role: kind === 'error' ? 'alert' : 'status' }, text);
}
