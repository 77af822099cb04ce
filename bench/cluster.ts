/**
 * The cluster benchmark: three `berth serve` hosts (the built CLI, from dist) sharing a fresh PostgreSQL
 * schema and an S3 bucket (s3rver), one `berth router` in front, the real `claude` CLI against the
 * scripted model; each number against a baseline from the same run: (1) a turn through the router vs
 * straight to the session's host; (2) the first SSE event on a stream through the router vs on the host;
 * (3) failover after SIGKILL vs the lease TTL (the floor: a lease cannot move before it expires); (4)
 * sessions moved when a fourth host joins vs the ideal 1/4 and rendezvous's prediction; (5) fenced
 * transcript appends on PostgreSQL and Redis vs unfenced ones.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { isBerthError } from '../src/errors.js';
import { rankHosts, routingKey } from '../src/placement.js';
import type { FencedSessionStore } from '../src/stores/coordination.js';
import { openStores, type Stores } from '../src/stores/open-stores.js';
import { startMockModel } from '../src/testing/index.js';
import { postgresBackend, redisBackend, s3Backend, type Backend } from '../test/helpers/backends.js';
import { Cluster, call, history } from '../test/helpers/cluster.js';
import {
  SseReader,
  describeMachine,
  eventually,
  idleAfter,
  killProcessesWithEnv,
  machineLine,
  median,
  ms,
  now,
  pairs,
  postMessage,
  ratio,
  renderSections,
  signedMs,
  statsRow,
  timed,
  transcriptEntries,
  type Machine,
  type Section,
  type Suite,
  type SuiteOptions,
  type SuiteReport,
  sessionBody,
} from './lib.js';

export const cluster: Suite = { name: 'cluster', run };

/** Measured turns per side in (1), and probes per side in (2), unless `--iterations` says otherwise. */
const TURNS = 100;
const GET_PAIRS = 100;
const [TTL, TTL_MS] = ['2s', 2000];
const [FAILOVER_ROUNDS, POLL_MS] = [3, 50];
const JOIN_SESSIONS = 120;
/** Once the predicted moves are done, 3 more heartbeats: time for a move that should not happen. */
const JOIN_QUIET_MS = TTL_MS;
const [FENCE_ROUNDS, FENCE_ENTRIES, FENCE_BATCH] = [6, 2000, 5];
const TARGET = { routerMs: 2, failoverMs: 3000, joinRatio: 1.3, fenceRatio: 0.9 };
/** Hang bounds (a turn that starts a subprocess, one that does not, a wait), far above what each takes. */
const [COLD_MS, WARM_MS, BOUND_MS] = [60_000, 30_000, 60_000];

/** `hostNo`: the number the next host's id takes. */
type Ctx = { cluster: Cluster; router: string; stores: Stores; log: (line: string) => void; hostNo: number };

async function run(options: SuiteOptions): Promise<SuiteReport> {
  const turns = options.iterations ?? TURNS;
  const machine = describeMachine();
  const { log } = options;
  const loadAtStart = os.loadavg()[0]!;
  log('  fenced appends (PostgreSQL, Redis)');
  const fencing = [await measureFencing(postgresBackend()), await measureFencing(redisBackend())];
  const pg = await postgresBackend().create();
  const s3 = s3Backend();
  const cleanups: Array<() => Promise<unknown>> = [() => s3.close(), () => pg.cleanup()];
  let failure: unknown;
  let results: Results | undefined;
  try {
    const model = await startMockModel();
    cleanups.unshift(() => model.close());
    const bucket = await s3.create();
    const stores = await openStores(pg.url);
    cleanups.unshift(() => stores.close());
    const blobStore = bucket.url.replace('/sessions?', '/blobs?');
    const c = new Cluster({ store: pg.url, blobStore, modelEndpoint: model.url, leaseTtl: TTL });
    cleanups.unshift(async () => {
      log('  stopping the cluster');
      const dirs = [...c.hosts.values()].map((h) => h.dataDir);
      await c.close();
      // A host ends its subprocess trees; this catches one that outlived its host (none expected).
      const left = (await Promise.all(dirs.map(sweep))).reduce((a, b) => a + b, 0);
      if (left > 0) log(`  killed ${left} subprocess(es) that outlived their host`);
    });
    log('  starting 3 hosts and a router');
    await Promise.all(['h1', 'h2', 'h3'].map((id) => c.addHost(id)));
    const ctx: Ctx = { cluster: c, router: (await c.addRouter()).url, stores, log, hostNo: 4 };
    const perTurn = await measureTurns(ctx, turns);
    const failover: FailoverRound[] = [];
    for (let round = 1; round <= FAILOVER_ROUNDS; round++) failover.push(await failoverRound(ctx, round));
    const join = await measureJoin(ctx);
    const load: [number, number] = [loadAtStart, os.loadavg()[0]!];
    results = { machine, load, turns, perTurn, failover, join, fencing };
  } catch (err) {
    failure = err;
  }
  // Every step runs, whatever failed before it.
  for (const cleanup of cleanups) await cleanup().catch((err: unknown) => (failure ??= err));
  if (failure !== undefined || !results) throw failure;
  return report(results);
}

/** Kills what a host started under `dataDir` and left running (by its subprocesses' config dirs). */
const sweep = (dataDir: string): Promise<number> => killProcessesWithEnv('CLAUDE_CONFIG_DIR', `${dataDir}/`);

// ---- sessions and turns -------------------------------------------------------------------------------

async function createSession(ctx: Ctx): Promise<{ id: string; owner: string; ownerUrl: string }> {
  const body = await sessionBody(ctx.router, { session: { title: 'bench' } });
  const res = await call<{ id: string }>(ctx.router, 'POST', '/v1/sessions', body);
  if (res.status !== 200 || !res.host) throw new Error(`create: ${res.status} ${JSON.stringify(res.body)}`);
  return { id: res.body.id, owner: res.host, ownerUrl: ctx.cluster.host(res.host).url };
}

const idOf = (key: string): string => key.slice(key.indexOf('/') + 1);

const stream = (base: string, id: string): Promise<SseReader> =>
  SseReader.open(`${base}/v1/sessions/${id}/events/stream`);

/** One turn: POST to `base`, until its idle arrives on `reader`, in ms. */
async function timedTurn(base: string, reader: SseReader, id: string, timeoutMs: number): Promise<number> {
  const started = now();
  const seq = await postMessage(base, id, `turn at ${started.toFixed(0)}`);
  return (await idleAfter(reader, seq, timeoutMs)) - started;
}

// ---- (1) per-turn overhead and (2) first SSE event ---------------------------------------------------

type PerTurn = Awaited<ReturnType<typeof measureTurns>>;

async function measureTurns(ctx: Ctx, turns: number) {
  const { id, ownerUrl } = await createSession(ctx);
  // Both streams see every event; each turn waits for the idle after its own message's seq.
  const readers: SseReader[] = [];
  let direct: number[], routed: number[];
  try {
    for (const base of [ownerUrl, ctx.router]) readers.push(await stream(base, id));
    const turn = (base: string, reader: SseReader) => () => timedTurn(base, reader, id, COLD_MS);
    // The first turn each way, the dropped one, starts the subprocess.
    [direct, routed] = await pairs(turns, turn(ownerUrl, readers[0]!), turn(ctx.router, readers[1]!));
  } finally {
    for (const reader of readers) reader.close();
  }
  ctx.log(`  turns: straight ${ms(median(direct))} ms, routed ${ms(median(routed))} ms (medians)`);
  const get = (base: string) => () => timed(() => call(base, 'GET', `/v1/sessions/${id}`));
  const [getDirect, getRouted] = await pairs(GET_PAIRS, get(ownerUrl), get(ctx.router));
  const key = routingKey('default', id);
  const leaseRead: number[] = [];
  for (let i = 0; i < GET_PAIRS; i++) leaseRead.push(await timed(() => ctx.stores.coordination!.lease(key)));
  // (2): the message goes straight to the host both ways, so that only the stream's path differs.
  const firstEvent = (base: string) => async (): Promise<number> => {
    const reader = await stream(base, id);
    try {
      const started = now();
      const seq = await postMessage(ownerUrl, id, 'first event probe');
      const first = await reader.next(() => true, WARM_MS);
      if (Number(first.data.seq) < seq) throw new Error(`a stale ${first.type} on a new stream`);
      await idleAfter(reader, seq, WARM_MS);
      return first.at - started;
    } finally {
      reader.close();
    }
  };
  const [sseDirect, sseRouted] = await pairs(turns, firstEvent(ownerUrl), firstEvent(ctx.router));
  ctx.log(`  first event: straight ${ms(median(sseDirect))}, routed ${ms(median(sseRouted))} ms (medians)`);
  await call(ctx.router, 'DELETE', `/v1/sessions/${id}`);
  return { direct, routed, getDirect, getRouted, leaseRead, sseDirect, sseRouted };
}

// ---- (3) failover after SIGKILL -----------------------------------------------------------------------

type FailoverRound = Awaited<ReturnType<typeof failoverRound>>;

/**
 * One round, in ms: `leaseLeftMs` what the killed host's lease had left at the kill (store clock, same
 * machine); from the kill, `answeredMs` until a GET through the router gets a 200 from another host,
 * `usableMs` until a turn posted then has ended; `turnMs` that turn alone; `polls`: the answers before.
 */
async function failoverRound(ctx: Ctx, round: number) {
  const { id, owner: victim } = await createSession(ctx);
  const key = routingKey('default', id);
  const before = await stream(ctx.router, id);
  const firstTurnMs = await timedTurn(ctx.router, before, id, COLD_MS).finally(() => before.close());
  // Another host starts from the store's copy; the host's spool ships it within milliseconds.
  const last = (await history(ctx.router, id)).at(-1)!.seq;
  const shipped = async (): Promise<boolean> => (await ctx.stores.eventLog.lastSeq(key)) >= last;
  await eventually(shipped, 'events shipped', BOUND_MS);
  const host = ctx.cluster.host(victim);
  host.child.kill('SIGKILL');
  await host.exit;
  const killedAt = now();
  const lease = await ctx.stores.coordination!.lease(key);
  const leaseLeftMs = (lease?.expiresAt ?? NaN) - Date.now() + (now() - killedAt);
  const polls: Record<string, number> = {};
  let lastRefusal = '';
  let successor: string | null = null;
  while (successor === null) {
    const started = now();
    const res = await call(ctx.router, 'GET', `/v1/sessions/${id}`).catch(() => undefined);
    if (res?.status === 200 && res.host !== victim) successor = res.host;
    if (now() - killedAt > BOUND_MS) throw new Error(`no failover of ${id} within ${BOUND_MS} ms`);
    if (successor !== null) break;
    const status = `${res?.status ?? 'error'} ${res?.body?.error?.code ?? ''}`.trim();
    polls[status] = (polls[status] ?? 0) + 1;
    lastRefusal = String(res?.body?.error?.message ?? '');
    await sleep(Math.max(0, POLL_MS - (now() - started)));
  }
  const answeredMs = now() - killedAt;
  const after = await stream(ctx.router, id);
  const posted = now();
  const idleAt = await postMessage(ctx.router, id, 'after the failover', BOUND_MS)
    .then((seq) => idleAfter(after, seq, COLD_MS))
    .finally(() => after.close());
  const usableMs = idleAt - killedAt;
  ctx.log(
    `  failover ${round}/${FAILOVER_ROUNDS}: ${victim} killed; ${successor} answered after ` +
      `${ms(answeredMs)} ms, a turn there ended after ${ms(usableMs)} ms`,
  );
  await call(ctx.router, 'DELETE', `/v1/sessions/${id}`);
  // The next round starts again with three live hosts.
  await sweep(host.dataDir);
  await ctx.cluster.addHost(`h${ctx.hostNo++}`);
  const hosts = async (): Promise<string[]> => (await ctx.stores.coordination!.hosts()).map((h) => h.id);
  await eventually(async () => !(await hosts()).includes(victim), `${victim} to leave`, BOUND_MS);
  const [turnMs, afterExpiryMs] = [idleAt - posted, answeredMs - leaseLeftMs];
  const times = { leaseLeftMs, answeredMs, afterExpiryMs, usableMs, turnMs, firstTurnMs };
  return { victim, successor, ...times, polls, lastRefusal };
}

// ---- (4) sessions moved when a host joins -------------------------------------------------------------

type JoinResult = Awaited<ReturnType<typeof measureJoin>>;

/**
 * `landed`: moved sessions that a GET through the router then found on the new host; `settleMs`: join ->
 * every predicted session released by its host.
 */
async function measureJoin(ctx: Ctx) {
  const coordination = ctx.stores.coordination!;
  await sleep(TTL_MS); // every host and router on the same host list (a host joined a moment ago)
  const keys: string[] = [];
  let made = 0;
  const worker = async (): Promise<void> => {
    while (made++ < JOIN_SESSIONS) keys.push(routingKey('default', (await createSession(ctx)).id));
  };
  await Promise.all([worker(), worker(), worker(), worker()]);
  const held = async (): Promise<Map<string, string>> => {
    const leases = await coordination.leases(keys);
    return new Map(keys.flatMap((k) => (leases.get(k)?.live ? [[k, leases.get(k)!.hostId] as const] : [])));
  };
  // One that is not held (a host moved it at once) is loaded again where it hashes to, by a GET.
  const atFirst = await held();
  for (const k of keys) if (!atFirst.has(k)) await call(ctx.router, 'GET', `/v1/sessions/${idOf(k)}`);
  const holders = await held();
  if (holders.size < keys.length) throw new Error(`${keys.length - holders.size} sessions are not held`);
  const movedKeys = async (): Promise<string[]> => {
    const current = await held();
    return keys.filter((k) => current.get(k) !== holders.get(k));
  };
  const hostsBefore = (await coordination.hosts()).length;
  const newId = `h${ctx.hostNo++}`;
  ctx.log(`  ${keys.length} sessions on ${hostsBefore} hosts; ${newId} joins`);
  await ctx.cluster.addHost(newId);
  const joined = now();
  const hostsAfter = await coordination.hosts();
  if (!hostsAfter.some((h) => h.id === newId)) throw new Error(`${newId} is not in the host list`);
  // What every host and router computes from the registry (capacities included).
  const predicted = new Set(keys.filter((k) => rankHosts(k, hostsAfter)[0]?.id === newId));
  const settled = async (): Promise<boolean> => {
    const moved = new Set(await movedKeys());
    return [...predicted].every((k) => moved.has(k));
  };
  await eventually(settled, `the sessions that hash to ${newId} to be released`, BOUND_MS);
  const settleMs = now() - joined;
  await sleep(JOIN_QUIET_MS);
  const moved = await movedKeys();
  let landed = 0;
  for (const k of moved) {
    const res = await call(ctx.router, 'GET', `/v1/sessions/${idOf(k)}`);
    if (res.status === 200 && res.host === newId) landed++;
  }
  ctx.log(`  ${moved.length} moved (predicted ${predicted.size}), settled after ${ms(settleMs)} ms`);
  return {
    ...{ hostsBefore, sessions: keys.length, ideal: keys.length / (hostsBefore + 1) },
    ...{ predicted: predicted.size, moved: moved.length, landed, settleMs },
    movedNotPredicted: moved.filter((k) => !predicted.has(k)).length,
    predictedNotMoved: [...predicted].filter((k) => !moved.includes(k)).length,
  };
}

// ---- (5) fenced appends -------------------------------------------------------------------------------

/** Each way: entries/s per round, and every append's ms. */
type FenceSide = { rates: number[]; calls: number[] };
/** `ratio`: fenced / unfenced entries/s, the median of the rounds' ratios. */
type FenceResult = { backend: string; fenced: FenceSide; unfenced: FenceSide; ratio: number };

/**
 * Each round: two fresh transcripts, one appended to under the fence and one without, taking turns batch
 * by batch (who goes first alternates by round), so that the machine's drift hits both alike.
 */
async function measureFencing(backend: Backend): Promise<FenceResult> {
  const store = await backend.create();
  const stores = await openStores(store.url);
  try {
    const transcripts: FencedSessionStore = stores.transcriptStore;
    const lease = `default/bench-fence-${randomUUID()}`;
    const held = await stores.coordination!.acquire(lease, 'bench-host', 600_000);
    const fence = { lease, token: held.lease.token };
    const [fenced, unfenced]: FenceSide[] = [0, 1].map(() => ({ rates: [], calls: [] }));
    const result: FenceResult = { backend: backend.name, fenced: fenced!, unfenced: unfenced!, ratio: NaN };
    for (let round = 0; round <= FENCE_ROUNDS; round++) {
      const sides = [true, false].map((fenced) => {
        const key = { projectKey: 'bench', sessionId: randomUUID() };
        return {
          fenced,
          key,
          entries: transcriptEntries(key.sessionId, FENCE_ENTRIES),
          calls: [] as number[],
        };
      });
      if (round % 2 === 1) sides.reverse();
      for (let i = 0; i < FENCE_ENTRIES; i += FENCE_BATCH) {
        for (const side of sides) {
          const batch = side.entries.slice(i, i + FENCE_BATCH);
          const started = now();
          await transcripts.append(side.key, batch, side.fenced ? { fence } : undefined);
          side.calls.push(now() - started);
        }
      }
      if (round === 0) continue; // connections, schema, caches
      for (const side of sides) {
        const to = side.fenced ? result.fenced : result.unfenced;
        to.calls.push(...side.calls);
        to.rates.push((FENCE_ENTRIES / side.calls.reduce((a, b) => a + b)) * 1000);
      }
    }
    result.ratio = median(result.fenced.rates.map((x, i) => x / result.unfenced.rates[i]!));
    // The fenced path must be the one that checks: a stale token is refused.
    const stale = { fence: { lease, token: fence.token - 1 } };
    const refused = await transcripts
      .append({ projectKey: 'bench', sessionId: randomUUID() }, transcriptEntries('x', 1), stale)
      .then(
        () => false,
        (err: unknown) => isBerthError(err, 'lease_lost'),
      );
    if (!refused) throw new Error(`${backend.name}: an append under a stale token was not refused`);
    return result;
  } finally {
    await stores.close();
    await store.cleanup();
  }
}

// ---- the report ---------------------------------------------------------------------------------------

interface Results {
  machine: Machine;
  load: [number, number];
  turns: number;
  perTurn: PerTurn;
  failover: FailoverRound[];
  join: JoinResult;
  fencing: FenceResult[];
}

type Target = [name: string, measured: string, pass: boolean];

function report(results: Results): SuiteReport {
  const { machine, load, turns, perTurn: t, failover, join, fencing } = results;
  const stats = ['', 'n', 'median ms', 'p90 ms', 'max ms'];
  const added = median(t.routed) - median(t.direct);
  const paired = median(t.routed.map((r, i) => r - t.direct[i]!));
  const worst = Math.max(...failover.map((f) => f.usableMs));
  const worstAnswer = Math.max(...failover.map((f) => f.answeredMs));
  const entryBytes = Math.round(Buffer.byteLength(JSON.stringify(transcriptEntries('x', 100))) / 100);
  const perSecond = (values: number[]): string => Math.round(median(values)).toLocaleString('en-US');
  const times = ['leaseLeftMs', 'answeredMs', 'afterExpiryMs', 'usableMs', 'turnMs', 'firstTurnMs'] as const;
  const polls = (f: FailoverRound): string => String(Object.entries(f.polls).map(([s, n]) => `${n}x ${s}`));
  const cells = (f: FailoverRound): string[] => [
    f.victim,
    f.successor,
    ...times.map((k) => ms(f[k])),
    polls(f),
  ];
  const targets: Target[] = [
    [
      `router adds <= +${TARGET.routerMs} ms per turn (median)`,
      `${signedMs(added)} ms (${ms(median(t.routed))} vs ${ms(median(t.direct))}); paired: ${signedMs(paired)} ms`,
      added <= TARGET.routerMs,
    ],
    [
      `usable <= ${TARGET.failoverMs / 1000} s after a SIGKILL (a turn ended; worst of ${failover.length})`,
      `${ms(worst)} ms, ${ratio(worst / TTL_MS)} the ${TTL} TTL (GET 200: ${ratio(worstAnswer / TTL_MS)})`,
      worst <= TARGET.failoverMs,
    ],
    [
      `sessions moved when a host joins <= ${TARGET.joinRatio}x the ideal 1/${join.hostsBefore + 1}`,
      `${join.moved} of ${join.sessions} vs ${ms(join.ideal)} (${ratio(join.moved / join.ideal)})`,
      join.moved <= TARGET.joinRatio * join.ideal,
    ],
    ['sessions moved that should not have: 0', String(join.movedNotPredicted), join.movedNotPredicted === 0],
    ...fencing.map((f): Target => [
      `fenced appends >= ${TARGET.fenceRatio}x unfenced (${f.backend})`,
      `${f.ratio.toFixed(3)}x`,
      f.ratio >= TARGET.fenceRatio,
    ]),
  ];
  const sections: Section[] = [
    [
      `(1) Per turn: straight to the host vs through the router (${turns} turns each, alternating)`,
      stats,
      [
        statsRow('straight to the host: POST -> status_idle on its SSE', t.direct),
        statsRow('through the router: POST -> status_idle on its SSE', t.routed),
        statsRow('GET /v1/sessions/:id straight to the host', t.getDirect),
        statsRow('GET /v1/sessions/:id through the router', t.getRouted),
        statsRow("↳ the router's store read per request (`coordination.lease`)", t.leaseRead),
      ],
      'One session, two SSE streams on it (through the router, on its host); a turn POSTs a `user.message` ' +
        "its stream's way, until its `session.status_idle` arrives there; the first turn each way (the " +
        `subprocess starts) is dropped. Then ${GET_PAIRS} GETs each way, and the router's lease read alone.`,
    ],
    [
      `(2) SSE first event: a stream through the router vs on the host (${turns} each, alternating)`,
      stats,
      [
        statsRow('stream on the host: POST -> first event', t.sseDirect),
        statsRow('stream through the router: POST -> first event', t.sseRouted),
      ],
      'A new stream per probe; the message goes straight to the host both ways; the first event is its ' +
        `echo. The router adds ${signedMs(median(t.sseRouted) - median(t.sseDirect))} ms (medians).`,
    ],
    [
      `(3) Failover after SIGKILL, --lease-ttl ${TTL} (${failover.length} rounds)`,
      'round|killed|successor|lease left ms|GET 200 ms|of it after expiry ms|turn ended ms|that turn ms'
        .concat('|first turn ms|polls before the 200')
        .split('|'),
      [
        ...failover.map((f, i) => [`${i + 1}`, ...cells(f)]),
        ['median', '', '', ...times.map((k) => ms(median(failover.map((f) => f[k])))), ''],
      ],
      'A session with one turn done; SIGKILL of its host; a GET through the router every ' +
        `${POLL_MS} ms until a 200 from another host, then a turn through the router ("turn ended"), both ` +
        'from the kill. "lease left": what the dead host\'s lease had left, the floor. "that turn": the ' +
        'turn alone (hydrate, subprocess start, turn); "first turn": its first turn on its first host. ' +
        'Heartbeats renew leases every third of the TTL; a new host replaces the dead one each round.',
    ],
    [
      `(4) Sessions moved when a host joins (${join.sessions} sessions on ${join.hostsBefore} hosts)`,
      'ideal|rendezvous prediction|moved|moved / ideal|moved, not predicted|predicted, not moved'
        .concat('|then on the new host|settled after ms')
        .split('|'),
      [
        [ms(join.ideal), join.predicted, join.moved, ratio(join.moved / join.ideal)]
          .concat([join.movedNotPredicted, join.predictedNotMoved, join.landed, ms(join.settleMs)])
          .map(String),
      ],
      'Sessions created through the router (no turns); a host joins. Prediction: sessions that rank it ' +
        "first on the registry's new host list. Moved: sessions whose holder changed, once all predicted " +
        `were released ("settled") and ${JOIN_QUIET_MS / 1000} s more; then a GET through the router for each.`,
    ],
    [
      `(5) Fenced transcript appends (${FENCE_ENTRIES} entries per round in batches of ${FENCE_BATCH}, ${FENCE_ROUNDS} rounds)`,
      ['backend', 'unfenced entries/s', 'fenced entries/s', 'fenced / unfenced', 'median append ms'],
      fencing.map(({ backend, unfenced: u, fenced: f, ratio: r }) => {
        const calls = `${ms(median(u.calls))} / ${ms(median(f.calls))}`;
        return [backend, perSecond(u.rates), perSecond(f.rates), `${r.toFixed(3)}x`, calls];
      }),
      '`transcriptStore.append` with `{ fence: { lease, token } }` and without, two fresh sessions per ' +
        'round taking turns batch by batch, after a warm-up round; medians of the rounds (the ratio: of ' +
        `their ratios); "median append": unfenced / fenced, one call. Entries: ${entryBytes} bytes of ` +
        'JSON. A stale token is checked to be refused (`lease_lost`).',
    ],
    ['Targets', ['target', 'measured', ''], targets.map(([a, b, ok]) => [a, b, ok ? 'pass' : 'MISS']), ''],
  ];
  const loadLine = `load average (1 min) ${load[0].toFixed(1)} at the start, ${load[1].toFixed(1)} at the end`;
  const intro = [
    `Measured on ${machineLine(machine)}; ${loadLine} (above 2, other work shared the CPUs). ` +
      'Source: `bench/cluster.ts`.',
    'Three `berth serve` hosts (the built CLI, `--sandbox none --warm-pool 0 --lease-ttl 2s`, the real ' +
      '`claude` CLI against the scripted model) share a fresh PostgreSQL schema and an S3 bucket (s3rver); ' +
      'one `berth router --refresh 200` in front; the client is the benchmark process; all on this one ' +
      'machine, over 127.0.0.1.',
  ];
  const heading = 'Cluster: the router, failover, rebalancing and fencing';
  return {
    ...renderSections(heading, intro, sections),
    raw: { ...results, targets },
    missed: targets.filter(([, , ok]) => !ok).map(([name]) => name),
  };
}
