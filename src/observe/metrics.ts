/**
 * Berth's metrics (prom-client), one registry per server, scraped at `GET /metrics`.
 *
 * Two kinds of figure:
 * - counters and histograms that the parts of Berth add to as things happen (a turn ends, a model request
 *   is answered, a store call fails); they are fields of {@link Metrics} and the parts hold the object;
 * - gauges read from the host at each scrape (sessions, slots, the warm pool, the mirror's backlog, the
 *   subprocesses' RSS), through the {@link HostFigures} the server binds with {@link Metrics.watch}.
 *
 * Label values are bounded: a session id is never a label. `tenant` is one of the configured API keys'
 * tenants; `route` is the route's pattern (`/v1/sessions/:id`), never the path; `reason`, `kind`,
 * `status` and `backend` come from fixed sets.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The part of the host's `GET /v1/host` answer (host/host-info.ts) that the scrape reads. */
export interface HostInfoFigures {
  status: string;
  slots: { used: number; free: number | null };
  capacity: { agents_per_host: number | null };
  warm_pool: { parked: number };
}

/** What the scrape reads from the host; every field is read at the scrape, never cached. */
export interface HostFigures {
  info(): HostInfoFigures;
  /** Sessions loaded on the host, by state (`SessionState`). */
  sessionStates(): Record<string, number>;
  /** Summed RSS of the live subprocess trees at their last sample (bytes). */
  subprocessRssBytes(): number;
  /** The durable mirror's spooled entries and the age of the oldest (seconds); zeros without a mirror. */
  mirror(): { entries: number; oldestSeconds: number };
}

// Session starts: a warm claim is tens of ms, a cold spawn about a second, a hydrate more (a restore).
const START_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64];
// Turns: from a scripted reply (tens of ms) to a long agent turn (many minutes).
const TURN_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800];
const HTTP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export class Metrics {
  readonly registry = new Registry();
  private defaultsOn = false;
  private figures: HostFigures | undefined;

  readonly sessionStart = new Histogram({
    name: 'berth_session_start_seconds',
    help: "From a turn's start to its subprocess's first message, by how it started (cold: a spawn; warm: a claimed spare; hydrate: a suspended session's restore and spawn)",
    labelNames: ['kind'] as const,
    buckets: START_BUCKETS,
    registers: [this.registry],
  });
  readonly turnDuration = new Histogram({
    name: 'berth_turn_duration_seconds',
    help: "A turn's duration, from its message to its end (any stop reason)",
    labelNames: ['stop_reason'] as const,
    buckets: TURN_BUCKETS,
    registers: [this.registry],
  });
  readonly modelRequests = new Counter({
    name: 'berth_model_requests_total',
    help: "Agents' model requests through the model proxy, by tenant and HTTP status (refused: over a budget)",
    labelNames: ['tenant', 'status'] as const,
    registers: [this.registry],
  });
  readonly modelTokens = new Counter({
    name: 'berth_model_tokens_total',
    help: "Tokens of the agents' model replies, by tenant and kind (input, output, cache_read, cache_creation)",
    labelNames: ['tenant', 'kind'] as const,
    registers: [this.registry],
  });
  readonly modelCost = new Counter({
    name: 'berth_model_cost_usd_total',
    help: "What the agents' model use cost at list prices (USD), by tenant",
    labelNames: ['tenant'] as const,
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: 'berth_store_errors_total',
    help: 'Store calls that failed or missed their deadline, by backend (sqlite, postgres, redis, s3, blob)',
    labelNames: ['backend'] as const,
    registers: [this.registry],
  });
  readonly recycles = new Counter({
    name: 'berth_recycles_total',
    help: 'Subprocesses recycled at a turn boundary (turns, soft_rss, age, other) or killed for their memory (hard_rss, memory_limit), by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly suspends = new Counter({
    name: 'berth_suspends_total',
    help: 'Sessions suspended (workspace snapshot, subprocess ended), by reason (idle_timeout, capacity, host_draining, rebalance, other)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly sseClients = new Gauge({
    name: 'berth_sse_clients',
    help: 'Open event streams (sessions, tasks, groups)',
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'berth_http_request_duration_seconds',
    help: "HTTP requests' duration until the answer's head (a stream's whole life is not counted), by route pattern and status",
    labelNames: ['method', 'route', 'status'] as const,
    buckets: HTTP_BUCKETS,
    registers: [this.registry],
  });

  constructor() {
    const figure = <T>(read: (f: HostFigures) => T): T | undefined =>
      this.figures ? read(this.figures) : undefined;
    new Gauge({
      name: 'berth_sessions',
      help: 'Sessions loaded on this host, by status (cold, starting, idle, running, requires_action, suspending, suspended)',
      labelNames: ['status'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [status, n] of Object.entries(figure((f) => f.sessionStates()) ?? {})) {
          this.set({ status }, n);
        }
      },
    });
    new Gauge({
      name: 'berth_slots',
      help: 'Subprocess slots (the sizing formula: (host RAM - overhead) / per-session ceiling), by state',
      labelNames: ['state'],
      registers: [this.registry],
      collect() {
        const slots = figure((f) => f.info().slots);
        if (!slots) return;
        this.set({ state: 'used' }, slots.used);
        if (slots.free !== null) this.set({ state: 'free' }, slots.free);
      },
    });
    new Gauge({
      name: 'berth_slots_used_ratio',
      help: 'Share of the subprocess slots in use (0-1): what hosts are scaled on',
      registers: [this.registry],
      collect() {
        const info = figure((f) => f.info());
        const total = info?.capacity.agents_per_host;
        this.set(info && total ? Math.min(1, info.slots.used / total) : 0);
      },
    });
    new Gauge({
      name: 'berth_warm_spares',
      help: 'Warm spares parked and ready to be claimed',
      registers: [this.registry],
      collect() {
        this.set(figure((f) => f.info().warm_pool.parked) ?? 0);
      },
    });
    new Gauge({
      name: 'berth_host_ready',
      help: '1 while the host admits work, 0 while it drains',
      registers: [this.registry],
      collect() {
        this.set(figure((f) => f.info().status) === 'ready' ? 1 : 0);
      },
    });
    new Gauge({
      name: 'berth_mirror_backlog_entries',
      help: 'Transcript entries and events spooled on this host that the store does not have yet',
      registers: [this.registry],
      collect() {
        this.set(figure((f) => f.mirror().entries) ?? 0);
      },
    });
    new Gauge({
      name: 'berth_mirror_oldest_seconds',
      help: 'Age of the oldest spooled entry (0 when the spool is empty)',
      registers: [this.registry],
      collect() {
        this.set(figure((f) => f.mirror().oldestSeconds) ?? 0);
      },
    });
    new Gauge({
      name: 'berth_subprocess_rss_bytes',
      help: "Resident memory of this host's agent subprocess trees at their last sample, summed",
      registers: [this.registry],
      collect() {
        this.set(figure((f) => f.subprocessRssBytes()) ?? 0);
      },
    });
  }

  /** Binds the gauges read at each scrape to a host. */
  watch(figures: HostFigures): void {
    this.figures = figures;
  }

  /** The text of a scrape. The process's own metrics start at the first one: nobody scraping pays nothing. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    if (!this.defaultsOn) {
      this.defaultsOn = true;
      collectDefaultMetrics({ register: this.registry });
    }
    return { text: await this.registry.metrics(), contentType: this.registry.contentType };
  }
}
