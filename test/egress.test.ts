/**
 * `agent.network.allowed_domains` through the API with the real CLI: a sandboxed agent reaches its allowed
 * domains over HTTPS (CONNECT) through Berth's egress proxy, and nothing else; a host that cannot enforce
 * the list (`--sandbox none`) refuses it rather than ignore it.
 */
import http from 'node:http';
import { readFile, writeFile } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findProcesses } from '../src/sandbox/process-tree.js';
import { startMockModel, type MockModel } from '../src/testing/index.js';
import { TestBerth, UNSANDBOXED } from './helpers/berth.js';

let model: MockModel;
let outside: http.Server;
let port: number;

beforeAll(async () => {
  // A server of the host's, standing in for an API on the internet (this machine has no internet).
  outside = http.createServer((_req, res) => res.end('hello from outside\n'));
  await new Promise<void>((resolve) => outside.listen(0, '127.0.0.1', resolve));
  port = (outside.address() as AddressInfo).port;
  // The command reads its targets from targets.txt, which the test writes into the session's cwd.
  const command =
    'while read -r line; do url=${line##* }; if out=$(eval "curl -sSf -m 5 $line" 2>&1); then echo "$url ok $out"; else echo "$url refused $out"; fi; done < targets.txt > out.txt 2>&1; echo probed';
  model = await startMockModel({
    scenarios: [
      {
        match: { userText: 'reach out' },
        steps: [{ toolUse: { name: 'Bash', input: { command } } }, { text: 'reached' }],
      },
    ],
  });
});
afterAll(async () => {
  await model?.close();
  await new Promise((resolve) => outside?.close(resolve));
});

describe("an environment's limited network (allowed_hosts)", () => {
  it('lets a sandboxed agent reach its allowed domain through the egress proxy, and nothing else', async () => {
    const berth = await TestBerth.start({ model, args: ['--sandbox', 'bwrap', '--egress-allow-private'] });
    try {
      const id = await berth.createSession({ allow: ['bash'], network: ['localhost'] });
      const cwd = berth.server.host.pathsFor({ tenant: 'default', id }).cwd;
      // -p -x: a CONNECT tunnel through the proxy in HTTPS_PROXY, as an HTTPS client would open
      // (--noproxy '': the sandbox's NO_PROXY names localhost, which is the test's stand-in domain).
      const proxied = "--noproxy '' -p -x $HTTPS_PROXY";
      const targets = [
        `${proxied} http://localhost:${port}/`,
        // The same server by another name: not an allowed domain.
        `${proxied} http://127.0.0.1:${port}/`,
        // Around the proxy: the sandbox has no network of its own.
        `--noproxy '*' http://localhost:${port}/`,
      ];
      await writeFile(path.join(cwd, 'targets.txt'), targets.map((t) => `${t}\n`).join(''));
      const events = await berth.turn(id, 'reach out');
      expect(events.at(-1)).toMatchObject({ type: 'session.status_idle', stop_reason: { type: 'end_turn' } });
      const out = await readFile(path.join(cwd, 'out.txt'), 'utf8');
      expect(out).toContain(`http://localhost:${port}/ ok hello from outside`);
      expect(out).toContain(`http://127.0.0.1:${port}/ refused`);
      expect(out.match(/refused/g)?.length).toBe(2);
      // The proxy token is in the agent's environment, never in an argv anyone on the host can read.
      // This server's agents only: another run on the machine may have agents with a proxy too.
      const ours = (p: { env: string[] }): boolean => p.env.some((v) => v.includes(berth.dataDir));
      const live = await findProcesses((p) => ours(p) && p.env.some((v) => v.startsWith('HTTPS_PROXY=')));
      expect(live.length).toBeGreaterThan(0);
      expect(
        (await findProcesses((p) => ours(p) && p.cmdline.includes('HTTPS_PROXY'))).map((p) => p.cmdline),
      ).toEqual([]);
    } finally {
      await berth.dispose();
    }
  });

  it('refuses the list on a host that cannot enforce it, and stores nothing', async () => {
    const berth = await TestBerth.start({ model, args: [...UNSANDBOXED] });
    try {
      const limited = { type: 'cloud', networking: { type: 'limited', allowed_hosts: ['example.com'] } };
      const res = await berth.api('POST', '/v1/environments', { name: 'limited', config: limited });
      expect(res.status).toBe(400);
      expect(JSON.stringify(res.body)).toMatch(/config.networking.*--sandbox none/);
      const list = await berth.api('GET', '/v1/environments');
      expect((list.body as { data: unknown[] }).data).toEqual([]);
      const bad = await berth.api('POST', '/v1/environments', {
        name: 'bad',
        config: { type: 'cloud', networking: { type: 'limited', allowed_hosts: ['http://example.com/'] } },
      });
      expect(bad.status).toBe(400);
    } finally {
      await berth.dispose();
    }
  });

  it('refuses an unrestricted network on a host that confines its agents', async () => {
    const berth = await TestBerth.start({ model, args: ['--sandbox', 'bwrap'] });
    try {
      const open = { type: 'cloud', networking: { type: 'unrestricted' } };
      const res = await berth.api('POST', '/v1/environments', { name: 'open', config: open });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/config.networking: this host confines agents/);
      expect(((await berth.api('GET', '/v1/environments')).body as { data: unknown[] }).data).toEqual([]);
    } finally {
      await berth.dispose();
    }
  });
});
