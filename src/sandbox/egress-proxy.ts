/**
 * The egress proxy: the only way out of a sandbox besides the model, and only for the domains an agent's
 * config allows (`agent.network.allowed_domains`). Sandboxed agents have no network of their own; one
 * whose config names domains gets `HTTPS_PROXY` pointing at a relay to this proxy's Unix socket, with a
 * token of its own as the proxy password, valid while its process lives (see `grant`).
 *
 * HTTPS only, by `CONNECT host:port`: the proxy checks the token, checks that `host` is one of the
 * process's domains (`example.com`, or `*.example.com` for its subdomains), resolves it, refuses when any
 * address is not public unicast (loopback, private, link-local, ... : a domain that resolves, or rebinds,
 * to Berth's API or the host's network is refused) unless `allowPrivate`, and then dials the address it
 * checked, never the name again. Plain-HTTP requests are refused: they would carry the agent's traffic
 * unencrypted through Berth and are not needed to reach an HTTPS API.
 *
 * Hand-written (about a hundred lines) because the check must be on the address actually dialed: the
 * ecosystem's Node proxy (`proxy` on npm) connects by name, with no hook between resolution and dial.
 */
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { rm } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import ipaddr from 'ipaddr.js';

export interface EgressProxyOptions {
  /** Where it listens (bound into sandboxes). */
  socketPath: string;
  /** Lets allowed domains resolve to loopback and private addresses (an operator's choice, for tests). */
  allowPrivate: boolean;
  onError?: ((err: unknown) => void) | undefined;
}

export interface EgressGrant {
  /** The proxy password of one process. */
  token: string;
  revoke: () => void;
}

/** How long a dial may take before the agent gets a 504. */
const CONNECT_TIMEOUT_MS = 10_000;

export class EgressProxy {
  private readonly grants = new Map<string, readonly string[]>();
  private readonly server: http.Server;

  private constructor(private readonly options: EgressProxyOptions) {
    this.server = http.createServer((req, res) => {
      req.resume();
      res
        .writeHead(403, { 'content-type': 'text/plain' })
        .end('berth: only HTTPS leaves a sandbox (CONNECT through this proxy)\n');
    });
    this.server.on('connect', (req: http.IncomingMessage, client: net.Socket, head: Buffer) => {
      this.tunnel(req, client, head).catch((err: unknown) => {
        this.options.onError?.(err);
        client.destroy();
      });
    });
  }

  static async start(options: EgressProxyOptions): Promise<EgressProxy> {
    const proxy = new EgressProxy(options);
    await rm(options.socketPath, { force: true });
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(options.socketPath, () => resolve());
    });
    return proxy;
  }

  /** A token for one process that may reach `domains`. */
  grant(domains: readonly string[]): EgressGrant {
    const token = randomBytes(24).toString('base64url');
    this.grants.set(
      token,
      domains.map((d) => d.toLowerCase()),
    );
    return { token, revoke: () => void this.grants.delete(token) };
  }

  close(): Promise<void> {
    this.grants.clear();
    return new Promise((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  private async tunnel(req: http.IncomingMessage, client: net.Socket, head: Buffer): Promise<void> {
    // Node takes its own error listener off the socket before 'connect': a client gone mid-lookup must
    // not become an uncaught EPIPE that takes the server down.
    let upstream: net.Socket | undefined = undefined;
    client.on('error', () => upstream?.destroy());
    const refuse = (status: string, why: string): void => {
      if (client.destroyed) return;
      client.end(
        `HTTP/1.1 ${status}\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nberth: ${why}\n`,
      );
    };
    const domains = this.grants.get(tokenOf(req.headers['proxy-authorization']) ?? '');
    if (!domains) return refuse('407 Proxy Authentication Required', 'no valid egress token');
    const target = /^([a-z0-9.-]+):(\d{1,5})$/i.exec(req.url ?? '');
    const host = target?.[1]?.toLowerCase().replace(/\.$/, '') ?? '';
    const port = Number(target?.[2]);
    if (!target || port < 1 || port > 65_535) return refuse('400 Bad Request', 'CONNECT needs host:port');
    if (!domains.some((d) => matches(host, d))) {
      return refuse('403 Forbidden', `${host} is not in this agent's network.allowed_domains`);
    }
    let addresses: { address: string }[];
    try {
      addresses = await lookup(host, { all: true });
    } catch {
      return refuse('502 Bad Gateway', `${host} does not resolve`);
    }
    const blocked = addresses.find((a) => ipaddr.process(a.address).range() !== 'unicast');
    if (blocked && !this.options.allowPrivate) {
      return refuse('403 Forbidden', `${host} resolves to ${blocked.address}, which is not a public address`);
    }
    const address = addresses[0]?.address;
    if (!address) return refuse('502 Bad Gateway', `${host} has no address`);
    if (client.destroyed) return;
    upstream = net.connect({ host: address, port, timeout: CONNECT_TIMEOUT_MS });
    let connected = false;
    upstream.once('timeout', () => {
      upstream.destroy();
      if (!connected) refuse('504 Gateway Timeout', `${host}:${port} did not answer`);
    });
    upstream.once('error', () => {
      if (connected) client.destroy();
      else refuse('502 Bad Gateway', `${host}:${port} refused the connection`);
    });
    upstream.once('connect', () => {
      connected = true;
      upstream.setTimeout(0);
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      if (head.length > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
      client.once('close', () => upstream?.destroy());
      upstream?.once('close', () => client.destroy());
    });
  }
}

/** `example.com` matches itself; `*.example.com` matches its subdomains (not itself). */
function matches(host: string, domain: string): boolean {
  return domain.startsWith('*.') ? host.endsWith(domain.slice(1)) : host === domain;
}

/** The password of a `Basic` Proxy-Authorization (the user name is not checked). */
function tokenOf(header: string | undefined): string | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice('Basic '.length), 'base64').toString();
  const colon = decoded.indexOf(':');
  return colon < 0 ? undefined : decoded.slice(colon + 1);
}
