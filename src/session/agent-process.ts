/**
 * One agent subprocess from start to end, for a session or a task: started with `query()`, or claimed
 * from a warm spare - and when the spare refuses the claim, killed and replaced by a `query()` that gets
 * the same input, so the owner reads one stream of messages either way.
 *
 * The owner must read {@link AgentProcess.messages} for the process's whole life: an SDK query that is
 * not read stalls, and leaving a `for await` over it kills the subprocess. Ending the process is
 * {@link AgentProcess.end} (stdin EOF, a grace period, then the SDK's abort and a kill of the whole
 * process tree) or {@link AgentProcess.kill} (the tree at once, with the kill grace).
 */
import type {
  Options,
  Query,
  SDKMessage,
  SDKResultMessage,
  SDKUserMessage,
} from '@anthropic-ai/claude-agent-sdk';
import { setTimeout as sleep } from 'node:timers/promises';
import { describeError } from '../errors.js';
import { roundUsd } from '../usd.js';
import {
  createPlainSpawner,
  type CreateSpawner,
  type SpawnedTree,
  type SpawnOwner,
} from '../sandbox/plain-spawn.js';
import type { ProcessTreeId } from '../sandbox/process-tree.js';
import { sdkRuntime, type AgentRuntime } from './agent-runtime.js';
import { InputQueue } from './input-queue.js';
import { claimSpare, type ClaimableSpare, type SpareClaimRequest } from './spare-claim.js';

/** What a fresh subprocess's options are built from: the parts that are made anew for each one. */
export interface SpawnParts {
  spawn: NonNullable<Options['spawnClaudeCodeProcess']>;
  abortController: AbortController;
}

export interface AgentProcessOptions {
  /** @default sdkRuntime */
  runtime?: AgentRuntime | undefined;
  /** Makes the spawner of a fresh subprocess. @default the plain spawner with `killGraceMs` */
  createSpawner?: CreateSpawner | undefined;
  /** Whose process this is: the sandbox's uid and the model proxy's accounting follow it. */
  owner: SpawnOwner;
  /** SIGTERM-to-SIGKILL grace when the process tree is killed. */
  killGraceMs: number;
  /** A held-open process reads pushed messages (`'streaming'`); a one-shot process gets its prompt. */
  prompt: 'streaming' | { text: string };
  /** The options of a fresh subprocess (the first one, or the fallback after a refused claim). */
  queryOptions: (parts: SpawnParts) => Options;
  /** A warm spare to claim instead of spawning, with what the claim carries. */
  spare?: { spare: ClaimableSpare; request: Omit<SpareClaimRequest, 'prompt'> } | undefined;
  /** Runs before the fallback subprocess starts (a task makes its own config dirs then). */
  beforeFallback?: (() => Promise<void>) | undefined;
  /**
   * What the CLI's cumulative cost already counts when it starts: a resumed CLI restores its session's
   * total so far (see `readCostBaseline`). Asked at the first result. @default 0
   */
  costBaseline?: (() => number) | undefined;
  /** Failures no caller sees (a refused spare that could not be killed). */
  onError?: ((err: unknown) => void) | undefined;
  /** Called at the process's first message, with whether a warm spare sent it (start-time metrics). */
  onFirstMessage?: ((warm: boolean) => void) | undefined;
}

/** The subprocess currently serving: the claimed spare, or a spawned one. */
interface Serving {
  query: Query;
  spawner: SpawnedTree;
  input: InputQueue<SDKUserMessage> | undefined;
  /** Only a spawned process has one: a spare's options were fixed at prewarm. */
  abortController: AbortController | undefined;
}

export class AgentProcess {
  readonly spawnedAt = Date.now();
  private serving: Serving;
  /** The claim, while the spare serves; undefined once the fallback has replaced it. */
  private claim: { spare: ClaimableSpare; claimed: Promise<boolean> } | undefined;
  private claimHonoured = false;
  /** Input pushed before the claim settled, which a fallback process must receive again. */
  private readonly unconfirmed: SDKUserMessage[] = [];
  private readonly ending: Promise<void>[] = [];
  private stopped = false;
  /** The cumulative cost at the last result; undefined before the first one. */
  private costSoFar: number | undefined;
  private results = 0;
  private readonly finished: Promise<void>;
  private markFinished!: () => void;

  private constructor(private readonly options: AgentProcessOptions) {
    this.finished = new Promise((resolve) => (this.markFinished = resolve));
    const claimed = options.spare ? this.claimSpare(options.spare) : undefined;
    this.serving = claimed ?? this.spawn();
  }

  /** Starts the process: claims the spare when there is one that can still be claimed, else spawns. */
  static start(options: AgentProcessOptions): AgentProcess {
    return new AgentProcess(options);
  }

  /** Undefined until the SDK has spawned the process. */
  get tree(): ProcessTreeId | undefined {
    return this.serving.spawner.tree;
  }

  /** Results this process has produced: the turns it ran. */
  get turns(): number {
    return this.results;
  }

  /** True when a warm spare serves (its claim honoured). */
  get warm(): boolean {
    return this.claimHonoured;
  }

  /** The tail of the CLI's stderr, for error reports. */
  stderrTail(): string {
    return this.serving.spawner.stderrTail();
  }

  /** The limit that ended the process (see `SpawnedTree.endCause`), if one did. */
  limitHit(): { type: 'memory_limit'; message: string } | undefined {
    return this.serving.spawner.endCause?.();
  }

  /** Why the process ended, for an error message: the failure, else an exit, and its last stderr lines. */
  whyEnded(failure: unknown): string {
    const tail = this.stderrTail().trim().split('\n').slice(-3).join(' | ');
    const why = failure ? describeError(failure) : 'the subprocess exited';
    return `${why}${tail ? ` (${tail})` : ''}`;
  }

  /** Hands a user message to a streaming process. */
  push(message: SDKUserMessage): void {
    const input = this.serving.input;
    if (!input) throw new Error('AgentProcess: push to a one-shot process');
    if (this.claim && !this.claimHonoured) this.unconfirmed.push(message);
    input.push(message);
  }

  /**
   * Asks the CLI to stop the turn; true when `turnEnded` settles within `boundMs`. When it does not, the
   * interrupt did not take (a known failure in the field) and the owner kills the process.
   */
  async interruptWithin(boundMs: number, turnEnded: Promise<void>): Promise<boolean> {
    this.serving.query.interrupt().catch(() => undefined);
    return Promise.race([turnEnded.then(() => true), sleep(boundMs).then(() => false)]);
  }

  /**
   * This turn's cost: the SDK reports `total_cost_usd` summed over the process's life (and a resumed
   * process starts from its restored total), so a turn costs the difference from the last result.
   */
  turnCostUsd(result: SDKResultMessage): number {
    const before = this.costSoFar ?? this.options.costBaseline?.() ?? 0;
    this.costSoFar = Math.max(before, result.total_cost_usd);
    return Math.max(0, roundUsd(result.total_cost_usd - before));
  }

  /** The process's messages until it ends. Read it once, for the process's whole life. */
  async *messages(): AsyncGenerator<SDKMessage, void> {
    let first = this.options.onFirstMessage;
    try {
      for await (const message of this.serve()) {
        first?.(this.warm);
        first = undefined;
        yield message;
      }
    } finally {
      this.markFinished();
    }
  }

  private async *serve(): AsyncGenerator<SDKMessage, void> {
    if (this.claim) {
      const served = yield* this.readClaimed(this.claim);
      if (served) return;
      await this.fallBack();
    }
    yield* this.read(this.serving.query);
  }

  /**
   * Ends the process: stdin EOF and, when graceful, up to the kill grace for the CLI to finish writing;
   * then the SDK's abort and the whole tree killed. Resolves when the tree is gone.
   */
  async end(options: { graceful: boolean }): Promise<void> {
    const grace = this.options.killGraceMs;
    this.stopped = true;
    this.serving.input?.end();
    if (options.graceful) await Promise.race([this.finished, sleep(grace)]);
    this.serving.abortController?.abort();
    this.serving.query.close();
    await this.kill();
    await Promise.race([this.finished, sleep(grace)]);
  }

  /**
   * Kills the whole process tree (SIGTERM, the grace, SIGKILL); the first call's grace counts.
   * Idempotent; resolves when the tree is gone.
   */
  async kill(graceMs = this.options.killGraceMs): Promise<void> {
    this.stopped = true;
    await Promise.all([...this.ending, this.serving.spawner.kill(graceMs)]);
  }

  /** SIGKILL to the process group now, no grace: for a task whose answer is in (it keeps no transcript). */
  killGroupNow(): void {
    const leaderPid = this.tree?.leaderPid;
    this.serving.query.close();
    if (leaderPid === undefined || leaderPid <= 1) return;
    try {
      process.kill(-leaderPid, 'SIGKILL');
    } catch {
      // the group is already gone
    }
  }

  private spawn(): Serving {
    const spawner = (
      this.options.createSpawner ?? (() => createPlainSpawner({ killGraceMs: this.options.killGraceMs }))
    )(this.options.owner);
    const abortController = new AbortController();
    const input = this.options.prompt === 'streaming' ? new InputQueue<SDKUserMessage>() : undefined;
    const options = this.options.queryOptions({ spawn: (o) => spawner.spawn(o), abortController });
    const runtime = this.options.runtime ?? sdkRuntime;
    const prompt = input ?? (this.options.prompt as { text: string }).text;
    return { query: runtime.query({ prompt, options }), spawner, input, abortController };
  }

  /** The spare's process, claimed; undefined when it died or was closed before it could be. */
  private claimSpare(source: NonNullable<AgentProcessOptions['spare']>): Serving | undefined {
    const input = this.options.prompt === 'streaming' ? new InputQueue<SDKUserMessage>() : undefined;
    const prompt = input ?? (this.options.prompt as { text: string }).text;
    const claim = claimSpare(source.spare, { ...source.request, prompt });
    if (!claim) return undefined;
    this.claim = { spare: source.spare, claimed: claim.claimed };
    // From the claim on, the spare's model use is its claimant's (a task spare's would escape the budget).
    source.spare.spawner.assignOwner?.(this.options.owner);
    claim.claimed.then(
      (ok) => (this.claimHonoured = ok),
      () => undefined,
    );
    return { query: claim.query, spawner: source.spare.spawner, input, abortController: undefined };
  }

  private async *read(query: Query): AsyncGenerator<SDKMessage, void> {
    // Iterated by hand: leaving a `for await` would wait for the CLI's own shutdown.
    const it = query[Symbol.asyncIterator]();
    for (let next = await it.next(); !next.done; next = await it.next()) {
      this.count(next.value);
      yield next.value;
    }
  }

  /** The spare's messages while its claim holds; false when it was refused (nothing of it is yielded). */
  private async *readClaimed(claim: NonNullable<AgentProcess['claim']>): AsyncGenerator<SDKMessage, boolean> {
    const it = this.serving.query[Symbol.asyncIterator]();
    try {
      for (let next = await it.next(); !next.done; next = await it.next()) {
        // A refused claim answers with a `not_claimed` error result: none of that is the owner's.
        if (!(await claim.claimed)) return false;
        this.count(next.value);
        yield next.value;
      }
    } catch (err) {
      if (!(await claim.claimed)) return false;
      throw err;
    }
    return await claim.claimed;
  }

  /** The claim was refused: the spare goes, and a fresh subprocess gets the same input. */
  private async fallBack(): Promise<void> {
    const refused = this.serving;
    this.ending.push(
      refused.spawner.kill(this.options.killGraceMs).catch((err: unknown) => this.options.onError?.(err)),
    );
    this.claim = undefined;
    if (this.stopped) throw new Error('the warm spare refused the claim');
    await this.options.beforeFallback?.();
    if (this.stopped) throw new Error('the warm spare refused the claim');
    this.serving = this.spawn();
    for (const message of this.unconfirmed.splice(0)) this.serving.input?.push(message);
  }

  private count(message: SDKMessage): void {
    if (message.type === 'result') this.results += 1;
  }
}
