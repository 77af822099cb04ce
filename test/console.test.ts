/**
 * The web console (`GET /console`) in a real browser: Debian's chromium driven by playwright-core (which
 * downloads no browser), against a real Berth server with the scripted model and the real `claude` CLI.
 * The browser reaches Berth through a TCP relay of this file's, so that a test can cut the network under
 * a live event stream and see the console resume it with `Last-Event-ID`, without a duplicate.
 *
 * With BERTH_SCREENSHOTS=1 the tests also write docs/console-*.png (1366x768), the pictures the README shows.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Scenario } from '../src/testing/index.js';
import { TestBerth } from './helpers/berth.js';

const CHROMIUM = '/usr/bin/chromium';
const KEY = 'key-console-0001';
const AUTH = { 'x-api-key': KEY };
const SCREENSHOTS = process.env.BERTH_SCREENSHOTS === '1';
const DOCS = path.resolve(import.meta.dirname, '..', 'docs');
/** Bounds a wait that should end in seconds; a hang fails the test instead of the suite. */
const WAIT_MS = 45_000;

const scenarios: Scenario[] = [
  {
    name: 'probe',
    match: { userText: 'write the probe' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'echo probed > probe.txt && echo wrote' } } },
      { text: 'The probe is written.' },
    ],
  },
  {
    name: 'slow',
    match: { userText: 'a long story' },
    steps: [{ text: 'Once upon a time '.repeat(200), fault: { chunkDelayMs: 100 } }],
  },
  {
    name: 'report',
    match: { userText: 'make the report' },
    steps: [
      { toolUse: { name: 'Bash', input: { command: 'printf "north,12\\n" > report.csv' } } },
      { text: 'The report is written.' },
    ],
  },
];

/** A TCP relay to Berth that a test can cut (every open connection) and hold down (new ones refused). */
interface Relay {
  url: string;
  drop(): void;
  restore(): void;
  close(): Promise<void>;
}

async function startRelay(target: string): Promise<Relay> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<net.Socket>();
  let down = false;
  const server = net.createServer((client) => {
    if (down) {
      client.destroy();
      return;
    }
    const upstream = net.connect(Number(port), hostname);
    const end = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    sockets.add(client).add(upstream);
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${address.port}`,
    drop() {
      down = true;
      for (const socket of sockets) socket.destroy();
    },
    restore() {
      down = false;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A GET with the path sent exactly as given (fetch would resolve `..` first). */
function rawGet(
  base: string,
  rawPath: string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const req = http.request({ host: hostname, port, path: rawPath, method: 'GET' }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

let berth: TestBerth;
let relay: Relay;
let browser: Browser;
let context: BrowserContext;
const pages: Page[] = [];

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `${CHROMIUM} is missing: install Debian's chromium (apt-get install chromium). The console tests drive ` +
        'it with playwright-core, which downloads no browser of its own.',
    );
  }
  berth = await TestBerth.start({ scenarios, args: ['--api-keys', `acme:${KEY}`] });
  relay = await startRelay(berth.url);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  context = await browser.newContext({ viewport: { width: 1366, height: 768 }, acceptDownloads: true });
  context.setDefaultTimeout(WAIT_MS);
});

afterEach(async () => {
  for (const page of pages.splice(0)) await page.close().catch(() => undefined);
});

afterAll(async () => {
  await browser?.close();
  await relay?.close();
  await berth?.dispose();
});

async function newPage(): Promise<Page> {
  const page = await context.newPage();
  pages.push(page);
  // A console error (a CSP refusal, a module that failed to load) is a defect of the console.
  const problems: string[] = [];
  page.on('pageerror', (err) => problems.push(err.message));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) problems.push(msg.text());
  });
  Object.assign(page, { problems });
  return page;
}

function problemsOf(page: Page): string[] {
  return (page as Page & { problems: string[] }).problems;
}

async function screenshot(page: Page, name: string): Promise<void> {
  if (!SCREENSHOTS) return;
  await page.screenshot({ path: path.join(DOCS, `console-${name}.png`) });
}

async function signIn(page: Page, key = KEY): Promise<void> {
  await page.goto(`${relay.url}/console`);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
  if (key === KEY) await page.locator('#nav').waitFor();
}

/** The `data-seq` of every event shown in the log, in order. */
async function shownSeqs(page: Page): Promise<number[]> {
  const items = await page.locator('ol.events > li').all();
  return Promise.all(items.map(async (li) => Number(await li.getAttribute('data-seq'))));
}

/** Waits until the session's stored history has an idle event after `after` that ends a turn. */
async function turnEnded(id: string, after: number): Promise<number> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    const events = await berth.history(id, AUTH);
    const idle = events.find(
      (e) => e.seq > after && e.type === 'session.status_idle' && e.stop_reason.type !== 'requires_action',
    );
    if (idle) return idle.seq;
    if (Date.now() > deadline) throw new Error(`no turn ended after ${after}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('the console files', () => {
  it('serves index.html at /console and /console/ with a strict CSP, and its modules, without a key', async () => {
    for (const route of ['/console', '/console/']) {
      const res = await fetch(`${berth.url}${route}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8');
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toContain('unsafe-inline');
      expect(await res.text()).toContain('<script type="module" src="/console/app.js">');
    }
    const js = await fetch(`${berth.url}/console/views/session.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    const css = await fetch(`${berth.url}/console/console.css`);
    expect(css.headers.get('content-type')).toBe('text/css; charset=utf-8');
  });

  it('refuses anything outside the console directory', async () => {
    for (const raw of [
      '/console/../package.json',
      '/console/%2e%2e/package.json',
      '/console/..%2fpackage.json',
      '/console/..%2F..%2Fpackage.json',
      '/console/views/..%2f..%2fpackage.json',
      '/console/%252e%252e%252fpackage.json',
      '/console/nope.js',
      '/console/%ff',
    ]) {
      const res = await rawGet(berth.url, raw);
      expect([raw, res.status]).toEqual([raw, 404]);
    }
    // The API itself still wants its key.
    expect((await fetch(`${berth.url}/v1/sessions`)).status).toBe(401);
  });
});

// A walk-through runs several turns of the real CLI; the bound is for hangs on a loaded machine.
describe('the console in chromium', { timeout: 120_000 }, () => {
  it('shows the API error for a wrong key', async () => {
    const page = await newPage();
    await page.goto(`${relay.url}/console/`);
    await screenshot(page, 'sign-in');
    // Enter in the key field signs in, as the button does.
    await page.getByLabel('API key').fill('not-the-key');
    await page.getByLabel('API key').press('Enter');
    await page.getByRole('alert').filter({ hasText: 'Invalid API key' }).waitFor();
    expect(await page.locator('#nav').isHidden()).toBe(true);
    expect(problemsOf(page)).toEqual([]);
  });

  it('signs in with an empty key on a server without API keys', async () => {
    const open = await TestBerth.start({ model: berth.model });
    try {
      const page = await newPage();
      await page.goto(`${open.url}/console`);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.getByRole('heading', { name: 'Sessions' }).waitFor();
      await page.getByText('No sessions match.').waitFor();
      expect(problemsOf(page)).toEqual([]);
    } finally {
      await open.dispose();
    }
  });

  it('lists sessions, sends a message, allows a tool call and interrupts a long turn', async () => {
    const id = await berth.createSession({ title: 'Console walk-through', allow: ['read'] }, AUTH);
    const page = await newPage();
    await signIn(page);
    const row = page.locator(`tr[data-session-id="${id}"]`);
    await row.waitFor();
    expect(await row.textContent()).toContain('Console walk-through');
    // The text filter hides what does not match, and shows it again.
    await page.getByLabel('Search').fill('no such session');
    await row.waitFor({ state: 'detached' });
    await page.getByLabel('Search').fill('walk-through');
    await row.waitFor();
    await page.getByLabel('Search').fill('');
    await screenshot(page, 'sessions');

    await row.getByRole('link').click();
    await page.locator('.stream-state[data-state="live"]').waitFor();
    const box = page.getByLabel('Message');
    await box.fill('hello console');
    await box.press('Enter');
    await page.getByText('Scripted reply to: hello console').waitFor();

    // bash asks (always_ask): the turn waits until the console's Allow is clicked.
    await box.fill('write the probe');
    await box.press('Enter');
    const allow = page.getByRole('button', { name: 'Allow' });
    await allow.waitFor();
    expect(await page.locator('li.event.pending').textContent()).toContain('echo probed > probe.txt');
    await screenshot(page, 'session');
    await allow.click();
    await page.getByText('The probe is written.').waitFor();
    await page.locator('li[data-type="agent.tool_result"]', { hasText: 'wrote' }).waitFor();
    await page.locator('li[data-type="user.tool_confirmation"]', { hasText: 'Allowed' }).waitFor();
    expect(await allow.count()).toBe(0);

    // A long turn (its reply streams for seconds), interrupted: the turn ends.
    const before = (await berth.history(id, AUTH)).at(-1)!.seq;
    await box.fill('a long story');
    await box.press('Enter');
    // Enabled once the console has seen the turn start.
    const interrupt = page.getByRole('button', { name: 'Interrupt', disabled: false });
    await interrupt.click();
    await page.locator('li[data-type="user.interrupt"]').waitFor();
    const ended = await turnEnded(id, before);
    await page.locator(`li[data-seq="${ended}"]`).waitFor();

    // Every stored event is shown once, in order.
    const seqs = (await berth.history(id, AUTH)).map((e) => e.seq);
    expect(await shownSeqs(page)).toEqual(seqs);
    expect(problemsOf(page)).toEqual([]);
  });

  it('resumes the stream after a network drop with Last-Event-ID, without duplicates', async () => {
    const id = await berth.createSession({ title: 'Drop test' }, AUTH);
    await berth.send(id, [{ type: 'user.message', content: 'before the drop' }], AUTH);
    const first = await turnEnded(id, 0);

    const page = await newPage();
    const streamRequests: Array<string | undefined> = [];
    page.on('request', (req) => {
      if (req.url().endsWith(`/v1/sessions/${id}/events/stream`))
        streamRequests.push(req.headers()['last-event-id']);
    });
    await signIn(page);
    await page.goto(`${relay.url}/console/#/sessions/${id}`);
    await page.locator(`li[data-seq="${first}"]`).waitFor();
    await page.locator('.stream-state[data-state="live"]').waitFor();

    // The network goes: open connections are cut and new ones refused while events keep coming.
    relay.drop();
    await page.locator('.stream-state[data-state="reconnecting"]').waitFor();
    await berth.send(id, [{ type: 'user.message', content: 'during the drop' }], AUTH);
    const second = await turnEnded(id, first);
    relay.restore();

    await page.getByText('Scripted reply to: during the drop').waitFor();
    await page.locator(`li[data-seq="${second}"]`).waitFor();
    await page.locator('.stream-state[data-state="live"]').waitFor();
    const seqs = (await berth.history(id, AUTH)).map((e) => e.seq);
    expect(await shownSeqs(page)).toEqual(seqs);
    // The first request replays everything (after 0); the one that got through after the drop asked for
    // what came after the last event seen.
    expect(streamRequests[0]).toBe('0');
    expect(streamRequests).toContain(String(first));
    expect(streamRequests.every((h) => h === '0' || h === String(first))).toBe(true);
  });

  it('runs a task and downloads its artifact', async () => {
    const page = await newPage();
    await signIn(page);
    await page.getByRole('link', { name: 'Tasks' }).click();
    await page.getByLabel('Prompt').fill('make the report');
    await page.getByLabel(/Allowed tools/).fill('Bash');
    await page.getByRole('button', { name: 'Run task' }).click();
    const row = page.locator('tr[data-task-id]');
    await row.locator('.badge.status-succeeded').waitFor();
    expect(await row.textContent()).toContain('The report is written.');
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: 'Download report.csv' }).click(),
    ]);
    expect(download.suggestedFilename()).toBe('report.csv');
    expect(await readFile(await download.path(), 'utf8')).toBe('north,12\n');
    await screenshot(page, 'tasks');
    expect(problemsOf(page)).toEqual([]);
  });

  it("lists groups and shows a group's tagged stream", async () => {
    const created = await berth.api(
      'POST',
      '/v1/groups',
      { title: 'Console pair', agents: [{ name: 'analyst' }, { name: 'critic' }] },
      AUTH,
    );
    expect(created.status).toBe(200);
    const page = await newPage();
    await signIn(page);
    await page.getByRole('link', { name: 'Groups' }).click();
    await page.getByRole('link', { name: 'Console pair', exact: true }).click();
    await page.locator('.stream-state[data-state="live"]').waitFor();
    await page.getByLabel('To agent').selectOption('critic');
    await page.getByLabel('Message').fill('hello critic');
    await page.getByLabel('Message').press('Enter');
    const reply = page.locator('li[data-type="agent.message"]', {
      hasText: 'Scripted reply to: hello critic',
    });
    await reply.waitFor();
    expect(await reply.locator('.agent-tag').textContent()).toBe('critic');
    await screenshot(page, 'group');
    await berth.api('DELETE', `/v1/groups/${created.body.id}`, undefined, AUTH);
    await page.locator('li[data-type="group.status_terminated"]').waitFor();
    await page.locator('.stream-state[data-state="ended"]').waitFor();
    expect(problemsOf(page)).toEqual([]);
  });

  it('shows text from the API as text, never as markup', async () => {
    const markup = '<img src="/x" onerror="document.title=1"><b>bold</b>';
    const id = await berth.createSession({ title: markup }, AUTH);
    await berth.send(id, [{ type: 'user.message', content: markup }], AUTH);
    await turnEnded(id, 0);
    const page = await newPage();
    await signIn(page);
    const row = page.locator(`tr[data-session-id="${id}"]`);
    await row.getByText(markup).waitFor();
    await row.getByRole('link').click();
    await page.getByText(`Scripted reply to: ${markup}`).waitFor();
    expect(await page.locator('main img, main b').count()).toBe(0);
    expect(await page.title()).toBe('Berth console');
  });

  it("shows the host's capacity, slots and warm pool, and says it is not behind a router", async () => {
    const page = await newPage();
    await signIn(page);
    await page.getByRole('link', { name: 'Host' }).click();
    await page.getByRole('heading', { name: 'Warm pool' }).waitFor();
    const self = (await berth.api('GET', '/v1/hosts/self', undefined, AUTH)).body;
    expect(await page.locator('#slots-meter').getAttribute('max')).toBe(
      String(self.capacity.agents_per_host),
    );
    await page.getByText('not behind berth router').waitFor();
    await screenshot(page, 'host');
    expect(problemsOf(page)).toEqual([]);
  });

  it("lists every host from the router's GET /v1/hosts when there is one", async () => {
    const page = await newPage();
    // What `berth router` answers (src/router/router.ts, listHosts); a host alone has no such route.
    await page.route('**/v1/hosts', (route) =>
      route.fulfill({
        status: 200,
        contentType: 'application/json',
        body: JSON.stringify({
          data: ['host-a', 'host-b'].map((id, i) => ({
            id,
            url: `http://10.0.0.${i + 1}:8080`,
            state: i === 0 ? 'ready' : 'draining',
            capacity: 22,
            slots_free: 20 - i,
            last_heartbeat_at: new Date().toISOString(),
          })),
        }),
      }),
    );
    await signIn(page);
    await page.getByRole('link', { name: 'Host' }).click();
    await page.getByRole('heading', { name: 'All hosts' }).waitFor();
    const rows = page.locator('main table.list tbody tr');
    await rows.nth(1).waitFor();
    expect(await rows.nth(1).textContent()).toContain('host-b');
    expect(await rows.nth(1).locator('.badge').textContent()).toBe('draining');
  });
});
