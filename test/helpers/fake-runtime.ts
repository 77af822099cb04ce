/**
 * An `AgentRuntime` with no subprocess, for unit tests of what Berth does around the SDK (the session
 * state machine, tasks, the warm pool): every `query()` becomes a {@link FakeProcess} that the test
 * drives - it reads the user messages the owner pushes, emits SDK messages, asks `canUseTool`, exits.
 * The integration tests run the real CLI; this is for the transitions that are hard to reach with it.
 */
import type {
  CanUseTool,
  Options,
  PermissionResult,
  Query,
  SDKMessage,
  SDKResultMessage,
  SDKUserMessage,
  SpareProcess,
} from '@anthropic-ai/claude-agent-sdk';
import type { AgentRuntime } from '../../src/session/agent-runtime.js';
import type { SpawnedTree } from '../../src/sandbox/plain-spawn.js';

/** A push-pull queue: what one side puts, the other awaits. */
class Channel<T> {
  private readonly items: T[] = [];
  private readonly waiters: ((item: IteratorResult<T>) => void)[] = [];
  private ended = false;

  put(item: T): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter({ value: item, done: false });
    else this.items.push(item);
  }

  end(): void {
    this.ended = true;
    for (const waiter of this.waiters.splice(0)) waiter({ value: undefined, done: true });
  }

  take(): Promise<IteratorResult<T>> {
    const item = this.items.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.ended) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

export class FakeProcess {
  private readonly output = new Channel<SDKMessage | Error>();
  private readonly input = new Channel<SDKUserMessage>();
  interrupts = 0;
  closed = false;
  /** The cumulative cost this fake reports, as the CLI does. */
  private totalCost: number;
  readonly query: Query;

  constructor(
    readonly options: Options,
    prompt: string | AsyncIterable<SDKUserMessage>,
    /** When false, `interrupt()` is ignored (a CLI whose interrupt never settles). */
    private readonly honoursInterrupt: boolean,
    startingCost = 0,
  ) {
    this.totalCost = startingCost;
    if (typeof prompt === 'string') {
      this.input.put({ type: 'user', message: { role: 'user', content: prompt }, parent_tool_use_id: null });
    } else {
      void (async () => {
        for await (const message of prompt) this.input.put(message);
        this.input.end();
      })();
    }
    const next = async (): Promise<IteratorResult<SDKMessage>> => {
      const item = await this.output.take();
      if (!item.done && item.value instanceof Error) throw item.value;
      return item as IteratorResult<SDKMessage>;
    };
    const fake = {
      next,
      return: () => {
        this.close();
        return Promise.resolve({ value: undefined, done: true });
      },
      [Symbol.asyncIterator]: () => fake,
      interrupt: () => {
        this.interrupts += 1;
        if (this.honoursInterrupt) this.result({ subtype: 'error_during_execution' });
        return Promise.resolve(undefined);
      },
      close: () => this.close(),
    };
    this.query = fake as unknown as Query;
  }

  /** The next user message the owner pushed (or the prompt); undefined once stdin has ended. */
  async nextInput(): Promise<SDKUserMessage | undefined> {
    const item = await this.input.take();
    return item.done ? undefined : item.value;
  }

  emit(message: SDKMessage): void {
    this.output.put(message);
  }

  init(sessionId = 'fake-session'): void {
    this.emit({ type: 'system', subtype: 'init', session_id: sessionId } as unknown as SDKMessage);
  }

  say(text: string): void {
    this.emit({
      type: 'assistant',
      message: { role: 'assistant', content: [{ type: 'text', text }] },
      parent_tool_use_id: null,
      session_id: 'fake-session',
    } as unknown as SDKMessage);
  }

  /** A turn's result; `costUsd` is this turn's, and the fake reports the cumulative total like the CLI. */
  result(options: { costUsd?: number; subtype?: SDKResultMessage['subtype'] } = {}): void {
    this.totalCost += options.costUsd ?? 0;
    const subtype = options.subtype ?? 'success';
    this.emit({
      type: 'result',
      subtype,
      is_error: subtype !== 'success',
      result: 'done',
      errors: subtype === 'success' ? undefined : ['stopped'],
      total_cost_usd: this.totalCost,
      num_turns: 1,
      duration_ms: 1,
      usage: {
        input_tokens: 10,
        output_tokens: 2,
        cache_creation_input_tokens: 0,
        cache_read_input_tokens: 0,
      },
      session_id: 'fake-session',
    } as unknown as SDKMessage);
  }

  /** Asks the owner's `canUseTool`, as the CLI does before a tool that needs permission. */
  ask(
    toolUseID: string,
    toolName = 'Write',
    input: Record<string, unknown> = {},
  ): Promise<PermissionResult | null> {
    const canUseTool = this.options.canUseTool as CanUseTool;
    return canUseTool(toolName, input, {
      signal: new AbortController().signal,
      toolUseID,
    } as Parameters<CanUseTool>[2]);
  }

  /** The subprocess ends: cleanly, or with `error` (a crash). */
  exit(error?: Error): void {
    if (error) this.output.put(error);
    this.output.end();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.output.end();
  }
}

export class FakeRuntime implements AgentRuntime {
  readonly processes: FakeProcess[] = [];
  private readonly waiters: ((p: FakeProcess) => void)[] = [];
  /** Whether the next processes honour `interrupt()`. */
  honoursInterrupt = true;
  /** What the next process's cumulative cost starts from (a resumed CLI restores its last total). */
  startingCost = 0;

  query(params: { prompt: string | AsyncIterable<SDKUserMessage>; options: Options }): Query {
    // The SDK calls the spawn hook before the CLI starts; what the owner does there (adopting a resumed
    // transcript, reading its cost) runs here too. The fake spawner's process is never used.
    const { options } = params;
    options.spawnClaudeCodeProcess?.({
      command: 'claude',
      args: [],
      cwd: options.cwd,
      env: options.env ?? {},
      signal: new AbortController().signal,
    });
    const process = new FakeProcess(params.options, params.prompt, this.honoursInterrupt, this.startingCost);
    this.processes.push(process);
    for (const waiter of this.waiters.splice(0)) waiter(process);
    return process.query;
  }

  prewarm(): Promise<SpareProcess> {
    return Promise.reject(new Error('FakeRuntime: prewarm is not faked'));
  }

  /** The `n`th process (0-based), once it has been started. */
  process(n: number): Promise<FakeProcess> {
    const existing = this.processes[n];
    if (existing) return Promise.resolve(existing);
    return new Promise((resolve) => {
      const check = (p: FakeProcess): void => {
        if (this.processes[n]) resolve(this.processes[n]);
        else this.waiters.push(check);
        void p;
      };
      this.waiters.push(check);
    });
  }
}

/** A spawner with no process: the fake runtime never spawns. Counts kills. */
export function fakeSpawner(): SpawnedTree & { kills: number } {
  const spawner = {
    kills: 0,
    tree: undefined,
    stderrTail: () => '',
    kill: () => {
      spawner.kills += 1;
      return Promise.resolve();
    },
    // The fake runtime calls the spawn hook but runs no process: nothing reads what this returns.
    spawn: () => ({}) as ReturnType<SpawnedTree['spawn']>,
  };
  return spawner;
}
