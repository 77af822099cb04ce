/**
 * Metering of the model use that passes through the model proxy (model-proxy.ts): tokens and cost per
 * tenant and per owner (a session or a task), read from the Messages API replies as they stream by.
 *
 * The reply is tapped, never held: {@link meterReply} passes each chunk on as it arrives and reads a copy.
 * A `text/event-stream` reply reports usage in two events: `message_start` (`message.usage`: input and
 * cache tokens, output so far) and `message_delta` (`usage`: cumulative counts, at least the output
 * tokens); a JSON reply has it in the body's `usage`. Each reply's counts are cumulative, so what is added
 * to the totals is the growth since the last event: a stream cut short still counts what it reported.
 *
 * Spend (what budgets are held to) is what was metered plus a baseline per tenant: the spend recorded
 * before this host started (see `ModelMeter.seed`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { StringDecoder } from 'node:string_decoder';
import { Transform } from 'node:stream';
import { addUsd } from '../usd.js';
import { costUsd, type TokenCounts } from './model-prices.js';
import type { SpawnOwner } from './spawn-owner.js';

/** Tokens and cost metered, with the same names as a session's `usage`. */
export interface MeteredUsage {
  input_tokens: number;
  output_tokens: number;
  cache_creation_input_tokens: number;
  cache_read_input_tokens: number;
  cost_usd: number;
  /** Model replies that reported usage. */
  requests: number;
}

/** Owners whose totals are kept; the least recently metered go first past it (tenant totals stay). */
const MAX_OWNERS = 100_000;
/** A usage event is a few hundred bytes; an event longer than this is a content delta, not read. */
const MAX_EVENT_CHARS = 1 << 20;
/** A JSON reply longer than this is passed on but not metered (a Messages reply is far smaller). */
const MAX_JSON_BYTES = 16 << 20;

const ZERO: MeteredUsage = Object.freeze({
  input_tokens: 0,
  output_tokens: 0,
  cache_creation_input_tokens: 0,
  cache_read_input_tokens: 0,
  cost_usd: 0,
  requests: 0,
});

export class ModelMeter {
  private readonly tenants = new Map<string, MeteredUsage>();
  /** By `tenant NUL id`, least recently metered first. */
  private readonly owners = new Map<string, MeteredUsage>();
  private readonly baseline = new Map<string, number>();

  /** Adds what one reply used (`firstOfReply` counts it as a request). */
  add(owner: SpawnOwner, model: string, tokens: TokenCounts, firstOfReply: boolean): void {
    const cost = costUsd(model, tokens);
    const add = (total: MeteredUsage | undefined): MeteredUsage => {
      const t = total ?? ZERO;
      return {
        input_tokens: t.input_tokens + tokens.input_tokens,
        output_tokens: t.output_tokens + tokens.output_tokens,
        cache_creation_input_tokens: t.cache_creation_input_tokens + tokens.cache_creation_input_tokens,
        cache_read_input_tokens: t.cache_read_input_tokens + tokens.cache_read_input_tokens,
        cost_usd: addUsd(t.cost_usd, cost),
        requests: t.requests + (firstOfReply ? 1 : 0),
      };
    };
    this.tenants.set(owner.tenant, add(this.tenants.get(owner.tenant)));
    if (owner.id === undefined) return;
    const key = `${owner.tenant}\0${owner.id}`;
    const total = add(this.owners.get(key));
    this.owners.delete(key);
    this.owners.set(key, total);
    if (this.owners.size > MAX_OWNERS) this.owners.delete(this.owners.keys().next().value as string);
  }

  /** Records spend from before this meter started (what the tenant's stored records say it spent). */
  seed(tenant: string, usd: number): void {
    this.baseline.set(tenant, addUsd(this.baseline.get(tenant) ?? 0, usd));
  }

  /** What the tenant has spent: the seeded baseline plus what was metered since. */
  spentUsd(tenant: string): number {
    return addUsd(this.baseline.get(tenant) ?? 0, this.tenants.get(tenant)?.cost_usd ?? 0);
  }

  /** What this meter counted for the tenant (its processes' model use, warm spares' included). */
  usageOf(tenant: string): MeteredUsage {
    return { ...(this.tenants.get(tenant) ?? ZERO) };
  }

  /** What this meter counted for one session or task of the tenant; undefined when none (or forgotten). */
  usageOfOwner(tenant: string, id: string): MeteredUsage | undefined {
    const total = this.owners.get(`${tenant}\0${id}`);
    return total && { ...total };
  }
}

/**
 * A pass-through for one model reply (given its headers) that meters it: every chunk goes on at once,
 * unchanged; a copy is read for usage. `onError` hears what could not be metered (the reply itself is
 * never failed for it). The proxy asks for replies without compression, which could not be read here.
 */
export function meterReply(
  headers: IncomingHttpHeaders,
  onUsage: (model: string, tokens: TokenCounts, firstOfReply: boolean) => void,
  onError?: (err: unknown) => void,
): Transform {
  const report = onError ?? ((): void => undefined);
  const reader = new ReplyUsage(onUsage);
  const type = headers['content-type'] ?? '';
  const encoding = headers['content-encoding'] ?? 'identity';
  let parser: SseEvents | JsonBody | undefined;
  if (encoding !== 'identity') {
    report(new Error(`a model reply in content-encoding ${encoding} cannot be metered`));
  } else if (/^text\/event-stream/i.test(type)) {
    parser = new SseEvents((data) => reader.event(data), report);
  } else if (/^application\/json/i.test(type)) {
    parser = new JsonBody((body) => reader.json(body));
  }
  const guarded = (work: () => void): void => {
    try {
      work();
    } catch (err) {
      report(err);
    }
  };
  return new Transform({
    transform(chunk: Buffer, _encoding, done) {
      // First on its way, then read: metering never holds a byte back.
      done(null, chunk);
      if (parser) guarded(() => parser.write(chunk));
    },
    flush(done) {
      if (parser) guarded(() => parser.end());
      done();
    },
  });
}

/** A `usage` object as a reply has it. */
type WireUsage = Record<string, unknown>;

/** One reply's cumulative counts, and what of them was added to the meter already. */
class ReplyUsage {
  private model = '';
  private readonly latest = zeroCounts();
  private readonly counted = zeroCounts();
  private reported = false;

  constructor(private readonly onUsage: (model: string, tokens: TokenCounts, first: boolean) => void) {}

  event(data: Record<string, unknown>): void {
    if (data.type === 'message_start' && isObject(data.message)) {
      if (typeof data.message.model === 'string') this.model = data.message.model;
      if (isObject(data.message.usage)) this.update(data.message.usage);
    } else if (data.type === 'message_delta' && isObject(data.usage)) {
      this.update(data.usage);
    }
  }

  json(body: Record<string, unknown>): void {
    if (typeof body.model === 'string') this.model = body.model;
    if (isObject(body.usage)) this.update(body.usage);
  }

  private update(usage: WireUsage): void {
    for (const key of COUNTED) {
      const value = usage[key];
      if (typeof value === 'number' && Number.isFinite(value) && value >= 0) this.latest[key] = value;
    }
    const creation = usage.cache_creation;
    if (isObject(creation) && typeof creation.ephemeral_1h_input_tokens === 'number') {
      this.latest.cache_creation_1h_input_tokens = creation.ephemeral_1h_input_tokens;
    }
    const growth = zeroCounts();
    let grew = false;
    for (const key of ALL_COUNTS) {
      growth[key] = Math.max(0, this.latest[key] - this.counted[key]);
      this.counted[key] = Math.max(this.counted[key], this.latest[key]);
      if (growth[key] > 0) grew = true;
    }
    if (!grew && this.reported) return;
    this.onUsage(this.model, growth, !this.reported);
    this.reported = true;
  }
}

const COUNTED = [
  'input_tokens',
  'output_tokens',
  'cache_creation_input_tokens',
  'cache_read_input_tokens',
] as const;
const ALL_COUNTS = [...COUNTED, 'cache_creation_1h_input_tokens'] as const;

function zeroCounts(): TokenCounts {
  return {
    input_tokens: 0,
    output_tokens: 0,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 0,
    cache_creation_1h_input_tokens: 0,
  };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * The events of a `text/event-stream`, from chunks cut anywhere (inside a line, inside a UTF-8 character).
 * Only events whose data mentions `"usage"` are parsed: content deltas, the bulk of a reply, are skipped
 * without a JSON parse (a quote inside their text is escaped, so they cannot mention it).
 */
class SseEvents {
  private readonly decoder = new StringDecoder('utf8');
  private line = '';
  private data = '';
  /** The current line went over the limit: it is dropped, and so is the rest of its event. */
  private skipLine = false;
  private skipEvent = false;

  constructor(
    private readonly onEvent: (data: Record<string, unknown>) => void,
    private readonly onError: (err: unknown) => void,
  ) {}

  write(chunk: Buffer): void {
    this.take(this.decoder.write(chunk));
  }

  end(): void {
    this.take(this.decoder.end());
    if (this.line !== '' || this.skipLine) this.endLine();
    this.dispatch();
  }

  private take(text: string): void {
    let start = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', start)) {
      this.append(text.slice(start, end));
      this.endLine();
      start = end + 1;
    }
    this.append(text.slice(start));
  }

  private append(text: string): void {
    if (this.skipLine) return;
    this.line += text;
    if (this.line.length + this.data.length > MAX_EVENT_CHARS) {
      this.skipLine = true;
      this.skipEvent = true;
      this.line = '';
      this.data = '';
    }
  }

  private endLine(): void {
    const line = this.line.endsWith('\r') ? this.line.slice(0, -1) : this.line;
    this.line = '';
    if (this.skipLine) {
      this.skipLine = false;
    } else if (line === '') {
      this.dispatch();
    } else if (!this.skipEvent && line.startsWith('data:')) {
      const value = line.slice(line.startsWith('data: ') ? 6 : 5);
      this.data = this.data === '' ? value : `${this.data}\n${value}`;
    }
  }

  private dispatch(): void {
    const data = this.data;
    this.data = '';
    this.skipEvent = false;
    if (!data.includes('"usage"')) return;
    try {
      const parsed: unknown = JSON.parse(data);
      if (isObject(parsed)) this.onEvent(parsed);
    } catch (err) {
      this.onError(err);
    }
  }
}

/** A JSON body, parsed once it is complete. */
class JsonBody {
  private readonly chunks: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly onBody: (body: Record<string, unknown>) => void) {}

  write(chunk: Buffer): void {
    this.bytes += chunk.length;
    if (this.bytes <= MAX_JSON_BYTES) this.chunks.push(chunk);
    else this.chunks.length = 0;
  }

  end(): void {
    if (this.bytes > MAX_JSON_BYTES) {
      throw new Error(`a model reply of ${this.bytes} bytes is too large to meter`);
    }
    const parsed: unknown = JSON.parse(Buffer.concat(this.chunks).toString('utf8'));
    if (isObject(parsed)) this.onBody(parsed);
  }
}
