/**
 * A TCP proxy a test controls, in front of a shared backend (the PostgreSQL on 5432): a store outage for
 * the server that connects through it, while the test still reads the store directly.
 * - `down()` cuts every connection and refuses new ones (accepted, then closed at once), like a crash or
 *   a cut network; `up()` forwards again.
 * - `pause()` stops forwarding without closing anything (a store that hangs); `resume()` forwards what
 *   waited, and connects the connections accepted meanwhile.
 * The proxy keeps its port for its whole life, so the server's store URL stays valid.
 */
import net from 'node:net';

interface Pair {
  client: net.Socket;
  upstream: net.Socket | undefined;
}

export class TcpProxy {
  private readonly pairs = new Set<Pair>();
  private state: 'up' | 'down' | 'paused' = 'up';

  private constructor(
    private readonly server: net.Server,
    private readonly target: { host: string; port: number },
  ) {
    server.on('connection', (client) => this.accept(client));
  }

  /** Starts a proxy on a free port of 127.0.0.1 to `target`. */
  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new TcpProxy(server, target);
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  /** Cuts every connection; new ones are closed as soon as they are accepted. */
  down(): void {
    this.state = 'down';
    for (const pair of this.pairs) this.cut(pair);
  }

  up(): void {
    this.state = 'up';
  }

  /** Holds every byte in both directions, and new connections unanswered, until `resume()`. */
  pause(): void {
    this.state = 'paused';
    for (const { client, upstream } of this.pairs) {
      client.unpipe();
      upstream?.unpipe();
      client.pause();
      upstream?.pause();
    }
  }

  resume(): void {
    this.state = 'up';
    for (const pair of this.pairs) {
      if (pair.upstream) this.join(pair);
      else this.connect(pair);
    }
  }

  async close(): Promise<void> {
    this.down();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.state === 'down') {
      client.destroy();
      return;
    }
    const pair: Pair = { client, upstream: undefined };
    this.pairs.add(pair);
    client.on('close', () => this.cut(pair));
    if (this.state === 'paused') client.pause();
    else this.connect(pair);
  }

  private connect(pair: Pair): void {
    const upstream = net.connect(this.target.port, this.target.host);
    pair.upstream = upstream;
    upstream.on('error', () => undefined);
    upstream.on('close', () => this.cut(pair));
    this.join(pair);
  }

  private join({ client, upstream }: Pair): void {
    if (!upstream) return;
    client.pipe(upstream);
    upstream.pipe(client);
    client.resume();
    upstream.resume();
  }

  private cut(pair: Pair): void {
    this.pairs.delete(pair);
    pair.client.destroy();
    pair.upstream?.destroy();
  }
}
