/**
 * The real model key never reaches an agent: each `claude` subprocess talks to Berth's Messages API proxy
 * with a token of its own, and the proxy swaps it for the key. Tried as an agent would, with the real
 * CLI and its Bash tool; and the proxy alone, against the scripted model.
 */
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { MODEL_PORT } from '../src/sandbox/bwrap.js';
import { ModelProxy } from '../src/sandbox/model-proxy.js';
import { credentialFingerprint, startMockModel, type MockModel } from '../src/testing/index.js';
import { TestBerth } from './helpers/berth.js';

const REAL_KEY = 'sk-ant-real-key-that-no-agent-may-see';

let model: MockModel | undefined;
afterAll(async () => {
  await model?.close();
});

async function post(url: string, headers: Record<string, string>): Promise<Response> {
  return fetch(`${url}/v1/messages?beta=true`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'anthropic-version': '2023-06-01', ...headers },
    body: JSON.stringify({
      model: 'claude-test',
      max_tokens: 16,
      stream: true,
      messages: [{ role: 'user', content: 'hello through the proxy' }],
    }),
  });
}

describe('the model credential', () => {
  it('is a per-process token inside the agent, swapped for the real key outside it, and dies with the process', async () => {
    const scripted = await startMockModel({
      scenarios: [
        {
          match: { userText: 'show me your environment' },
          steps: [
            {
              toolUse: {
                name: 'Bash',
                input: { command: 'env | grep ^ANTHROPIC_ > seen-env.txt; echo done' },
              },
            },
            { text: 'shown' },
          ],
        },
      ],
    });
    const berth = await TestBerth.start({ model: scripted, env: { ANTHROPIC_API_KEY: REAL_KEY } });
    try {
      const id = await berth.createSession({ allow: ['bash'] });
      const before = scripted.requests.length;
      await berth.turn(id, 'show me your environment');
      const cwd = berth.server.host.pathsFor({ tenant: 'default', id }).cwd;
      const seen = Object.fromEntries(
        (await readFile(path.join(cwd, 'seen-env.txt'), 'utf8'))
          .trim()
          .split('\n')
          .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
      );
      // Inside: a token of this process, and the proxy, never the key or the model's own address.
      expect(seen.ANTHROPIC_API_KEY).toMatch(/^sk-berth-proc-/);
      expect(JSON.stringify(seen)).not.toContain(REAL_KEY);
      // The sandbox's own loopback, where a relay reaches the proxy's socket (no network inside).
      expect(seen.ANTHROPIC_BASE_URL).toBe(`http://127.0.0.1:${MODEL_PORT}`);
      // Outside: every request of the turn reached the model with the real key.
      const requests = scripted.requests.slice(before);
      expect(requests.length).toBeGreaterThan(0);
      expect(new Set(requests.map((r) => r.credential))).toEqual(new Set([credentialFingerprint(REAL_KEY)]));

      // A token copied out of the agent is refused by the proxy once its process is gone.
      const token = seen.ANTHROPIC_API_KEY!;
      await berth.api('DELETE', `/v1/sessions/${id}`);
      const stale = await post(berth.server.modelProxyUrl, { 'x-api-key': token });
      expect(stale.status).toBe(401);
      expect(stale.headers.get('x-should-retry')).toBe('false');
      expect(await stale.json()).toMatchObject({ type: 'error', error: { type: 'authentication_error' } });
      expect(scripted.requests.length).toBe(before + requests.length);
    } finally {
      await berth.dispose();
      await scripted.close();
    }
  });
});

describe('ModelProxy', () => {
  it('forwards a granted request with the real key and streams the reply; refuses others without forwarding', async () => {
    model ??= await startMockModel();
    const proxy = await ModelProxy.start({ upstream: model.url, apiKey: REAL_KEY });
    try {
      const grant = proxy.grant();
      const before = model.requests.length;
      const ok = await post(grant.baseUrl, { 'x-api-key': grant.token });
      expect(ok.status).toBe(200);
      expect(ok.headers.get('content-type')).toContain('text/event-stream');
      expect(await ok.text()).toContain('message_stop');
      const forwarded = model.requests.at(-1)!;
      expect(forwarded.credential).toBe(credentialFingerprint(REAL_KEY));
      expect(forwarded.path).toBe('/v1/messages');

      const attempts: Record<string, string>[] = [
        {},
        { 'x-api-key': 'sk-berth-proc-guessed' },
        { authorization: `Bearer ${REAL_KEY}x` },
      ];
      for (const headers of attempts) {
        const refused = await post(proxy.url, headers);
        expect(refused.status).toBe(401);
      }
      grant.revoke();
      expect((await post(proxy.url, { 'x-api-key': grant.token })).status).toBe(401);
      expect(model.requests.length).toBe(before + 1);
      expect(proxy.liveGrants).toBe(0);
    } finally {
      await proxy.close();
    }
  });

  it('sends the key only to its upstream: a request line naming another host, or a billing path it cannot meter, is refused', async () => {
    model ??= await startMockModel();
    // Another server the agent would like the real key sent to.
    const elsewhere = await startMockModel();
    const proxy = await ModelProxy.start({ upstream: model.url, apiKey: REAL_KEY });
    try {
      const grant = proxy.grant({ tenant: 'alpha', id: 'sess_1' });
      const port = new URL(proxy.url).port;
      const raw = (target: string): Promise<string> =>
        new Promise((resolve, reject) => {
          const socket = net.connect(Number(port), '127.0.0.1');
          let text = '';
          socket.setEncoding('utf8');
          socket.on('data', (chunk: string) => (text += chunk));
          socket.on('end', () => resolve(text));
          socket.on('error', reject);
          socket.end(
            `POST ${target} HTTP/1.1\r\nhost: x\r\nx-api-key: ${grant.token}\r\ncontent-type: application/json\r\n` +
              `connection: close\r\ncontent-length: 2\r\n\r\n{}`,
          );
        });
      for (const target of [
        `${elsewhere.url}/v1/messages`,
        `//127.0.0.1:${new URL(elsewhere.url).port}/v1/messages`,
      ]) {
        expect(await raw(target)).toMatch(/^HTTP\/1.1 400/);
      }
      expect(elsewhere.requests).toEqual([]);
      for (const path of ['/v1/messages/batches', '/v1/complete']) {
        expect(await raw(path)).toMatch(/^HTTP\/1.1 403/);
      }
      // A path that normalises to /v1/messages is metered like it.
      const before = model.requests.length;
      const dotted = await fetch(`${proxy.url}/v1/%2e/messages`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': grant.token },
        body: JSON.stringify({
          model: 'claude-test',
          max_tokens: 8,
          stream: true,
          messages: [{ role: 'user', content: 'hi' }],
        }),
      });
      await dotted.text();
      expect(model.requests.slice(before).map((r) => r.path)).toEqual(['/v1/messages']);
      expect(proxy.usageOfOwner('alpha', 'sess_1')?.requests).toBe(1);
    } finally {
      await proxy.close();
      await elsewhere.close();
    }
  });
});
