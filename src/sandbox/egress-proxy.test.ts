/**
 * The egress proxy alone, spoken to over its Unix socket as a sandbox's relay would: a token's domains
 * and nothing else, never a private address unless the operator allows it, never plain HTTP.
 */
import http from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressProxy } from './egress-proxy.js';

let dir: string;
let target: http.Server;
let targetPort: number;

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'berth-egress-'));
  target = http.createServer((_req, res) => res.end('hello from outside\n'));
  await new Promise<void>((resolve) => target.listen(0, '127.0.0.1', resolve));
  targetPort = (target.address() as net.AddressInfo).port;
});
afterAll(async () => {
  await new Promise((resolve) => target.close(resolve));
  await rm(dir, { recursive: true, force: true });
});

/** Sends `CONNECT host:port` (then a GET through the tunnel when it opens); resolves to all it read. */
function connect(socketPath: string, hostPort: string, token: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(socketPath);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      text += chunk;
      if (text.startsWith('HTTP/1.1 200') && text.endsWith('\r\n\r\n')) {
        socket.write(`GET / HTTP/1.1\r\nhost: ${hostPort}\r\nconnection: close\r\n\r\n`);
      }
    });
    socket.on('end', () => resolve(text));
    socket.on('error', reject);
    const auth =
      token === undefined
        ? ''
        : `proxy-authorization: Basic ${Buffer.from(`agent:${token}`).toString('base64')}\r\n`;
    socket.write(`CONNECT ${hostPort} HTTP/1.1\r\nhost: ${hostPort}\r\n${auth}\r\n`);
  });
}

async function withProxy(
  allowPrivate: boolean,
  run: (proxy: EgressProxy, socket: string) => Promise<void>,
): Promise<void> {
  const socket = path.join(dir, `egress-${allowPrivate}.sock`);
  const proxy = await EgressProxy.start({ socketPath: socket, allowPrivate });
  try {
    await run(proxy, socket);
  } finally {
    await proxy.close();
  }
}

describe('the egress proxy', () => {
  it("tunnels to a token's domain, and refuses other domains, other tokens and revoked ones", async () => {
    await withProxy(true, async (proxy, socket) => {
      const grant = proxy.grant(['localhost']);
      expect(await connect(socket, `localhost:${targetPort}`, grant.token)).toContain('hello from outside');
      // 127.0.0.1 is the same server, but not a domain of the grant.
      expect(await connect(socket, `127.0.0.1:${targetPort}`, grant.token)).toMatch(
        /^HTTP\/1.1 403.*not in this agent's network.allowed_domains/s,
      );
      expect(await connect(socket, `localhost:${targetPort}`, 'guessed')).toMatch(/^HTTP\/1.1 407/);
      expect(await connect(socket, `localhost:${targetPort}`, undefined)).toMatch(/^HTTP\/1.1 407/);
      grant.revoke();
      expect(await connect(socket, `localhost:${targetPort}`, grant.token)).toMatch(/^HTTP\/1.1 407/);
    });
  });

  it('refuses a domain that resolves to a loopback or private address unless the operator allows it', async () => {
    await withProxy(false, async (proxy, socket) => {
      const grant = proxy.grant(['localhost']);
      expect(await connect(socket, `localhost:${targetPort}`, grant.token)).toMatch(
        /^HTTP\/1.1 403.*not a public address/s,
      );
    });
  });

  it('matches *.example.com against subdomains only, and refuses plain HTTP', async () => {
    await withProxy(false, async (proxy, socket) => {
      const grant = proxy.grant(['*.example.com']);
      // Not a subdomain of the pattern: refused before any lookup.
      for (const host of ['example.com', 'evil-example.com', 'example.com.evil.net']) {
        expect(await connect(socket, `${host}:443`, grant.token)).toMatch(/^HTTP\/1.1 403.*allowed_domains/s);
      }
      const plain = await new Promise<number>((resolve, reject) => {
        const req = http.request(
          { socketPath: socket, path: 'http://example.com/', method: 'GET' },
          (res) => {
            res.resume();
            resolve(res.statusCode ?? 0);
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(plain).toBe(403);
    });
  });

  it('survives clients that go away mid-CONNECT, and serves the next one', async () => {
    await withProxy(true, async (proxy, socket) => {
      const grant = proxy.grant(['localhost']);
      const auth = Buffer.from(`agent:${grant.token}`).toString('base64');
      for (let i = 0; i < 20; i++) {
        const gone = net.connect(socket);
        gone.on('error', () => undefined);
        gone.write(`CONNECT localhost:${targetPort} HTTP/1.1\r\nproxy-authorization: Basic ${auth}\r\n\r\n`);
        gone.destroy();
      }
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(await connect(socket, `localhost:${targetPort}`, grant.token)).toContain('hello from outside');
    });
  });
});
