/**
 * What a router knows of the hosts: the registry's list of live hosts, cached and read again every
 * `refreshMs` (and at once after a host could not be reached), and, per session-bound request, the
 * session's lease. The router keeps no other state, so any number of replicas agree as soon as their
 * caches do.
 *
 * A store that stops answering does not stop routing: the last list read stays in use (a host that died
 * since is skipped when its connection fails), and `/readyz` says the store is down. Only a router that
 * never read a list fails its requests.
 */
import { describeError } from '../errors.js';
import type { Coordination, HostEntry } from '../stores/coordination.js';
import { DEFAULT_STORE_TIMEOUT_MS, withDeadline } from '../stores/deadline.js';

/** Options of {@link HostDirectory}. */
export interface HostDirectoryOptions {
  /** The shared store's host registry and leases. */
  coordination: Pick<Coordination, 'hosts' | 'lease'>;
  /**
   * How often the host list is read again, in ms.
   * @default 1000
   */
  refreshMs?: number;
  /**
   * The deadline of each store call, in ms.
   * @default 10000
   */
  storeTimeoutMs?: number;
  /** Where failures of background reads go (only the first of a run of failures). */
  onError?: (err: unknown) => void;
}

interface HostList {
  hosts: HostEntry[];
  /** Epoch ms (local clock) when it was read. */
  readAt: number;
}

export class HostDirectory {
  private readonly coordination: Pick<Coordination, 'hosts' | 'lease'>;
  private readonly refreshMs: number;
  private readonly storeTimeoutMs: number;
  private readonly onError: (err: unknown) => void;
  private list: HostList | undefined;
  private reading: Promise<HostEntry[]> | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Whether the last background read failed: a store that is down is logged once, not every second. */
  private failing = false;
  /** Called with the live host ids after each successful read (see {@link watchHost}). */
  private readonly readListeners = new Set<(live: ReadonlySet<string>) => void>();

  constructor(options: HostDirectoryOptions) {
    this.coordination = options.coordination;
    this.refreshMs = options.refreshMs ?? 1000;
    this.storeTimeoutMs = options.storeTimeoutMs ?? DEFAULT_STORE_TIMEOUT_MS;
    this.onError = options.onError ?? (() => undefined);
  }

  /** Reads the list now and then every `refreshMs` until {@link close}. */
  start(): void {
    if (this.timer) return;
    this.refreshInBackground();
    this.timer = setInterval(() => this.refreshInBackground(), this.refreshMs);
    // The router's server keeps the process alive; the refresh must not hold it open after close.
    this.timer.unref();
  }

  /** The live hosts as last read; the first call of a router that has read none waits for a read. */
  async hosts(): Promise<HostEntry[]> {
    return this.list?.hosts ?? (await this.refresh());
  }

  /** The live hosts, read within the last `maxAgeMs` (for `/readyz` and `/v1/hosts`); throws when the store fails. */
  async fresh(maxAgeMs: number): Promise<HostEntry[]> {
    if (this.list && Date.now() - this.list.readAt < maxAgeMs) return this.list.hosts;
    return this.refresh();
  }

  /** Reads the list from the store; callers at the same moment share one read. */
  refresh(): Promise<HostEntry[]> {
    this.reading ??= (async () => {
      try {
        const hosts = await withDeadline('store list hosts', this.storeTimeoutMs, undefined, (signal) =>
          this.coordination.hosts({ signal }),
        );
        this.list = { hosts, readAt: Date.now() };
        this.failing = false;
        const live = new Set(hosts.map((h) => h.id));
        for (const listener of [...this.readListeners]) listener(live);
        return hosts;
      } finally {
        this.reading = undefined;
      }
    })();
    return this.reading;
  }

  /** A read in the background: after a connection failure, and on the timer. */
  refreshInBackground(): void {
    this.refresh().catch((err: unknown) => {
      if (this.failing) return;
      this.failing = true;
      this.onError(new Error(`router: cannot read the host list: ${describeError(err)}`, { cause: err }));
    });
  }

  /**
   * The host holding a live lease on `key`, when it is among `hosts` (a lease can outlive its host's
   * entry by a few seconds: then nobody holds the session and the hash order decides). A store that fails
   * here is logged and answers undefined: the hash order is a fine guess, and the host forwards if not.
   */
  async leaseHolder(
    key: string,
    hosts: readonly HostEntry[],
    signal?: AbortSignal,
  ): Promise<HostEntry | undefined> {
    try {
      const lease = await withDeadline('store read lease', this.storeTimeoutMs, signal, (s) =>
        this.coordination.lease(key, { signal: s }),
      );
      if (!lease?.live) return undefined;
      return hosts.find((host) => host.id === lease.hostId);
    } catch (err) {
      if (!signal?.aborted) this.onError(err);
      return undefined;
    }
  }

  /**
   * A signal that aborts when a read of the list no longer has the host: a host that stopped answering
   * (frozen, or cut off) still accepts connections, and what was sent to it would wait forever. `stop()`
   * ends the watch once the exchange is over.
   */
  watchHost(hostId: string): { signal: AbortSignal; stop: () => void } {
    const controller = new AbortController();
    const listener = (live: ReadonlySet<string>): void => {
      if (live.has(hostId)) return;
      this.readListeners.delete(listener);
      controller.abort(new Error(`host ${hostId} stopped heartbeating`));
    };
    this.readListeners.add(listener);
    return { signal: controller.signal, stop: () => this.readListeners.delete(listener) };
  }

  /** Stops the refresh timer; idempotent. */
  close(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
