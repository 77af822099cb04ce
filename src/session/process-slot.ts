/**
 * The one subprocess a session may have, and the subprocesses it retired that are still ending. A new
 * subprocess starts only after every retired one is gone (see {@link ProcessSlot.settled}): two
 * subprocesses of one session must never write its transcript together.
 */
import type { AgentProcess } from './agent-process.js';

export interface ProcessSlotOptions {
  /** The live subprocess has ended (or was ended): the session detaches it. */
  onEnded: (proc: AgentProcess, failure: unknown) => void;
  report: (err: unknown) => void;
}

export class ProcessSlot {
  private live: AgentProcess | undefined;
  private retiring: Promise<void> | undefined;

  constructor(private readonly options: ProcessSlotOptions) {}

  get current(): AgentProcess | undefined {
    return this.live;
  }

  set(proc: AgentProcess): void {
    this.live = proc;
  }

  /** Takes the live subprocess out of the slot (it is no longer the session's) and returns it. */
  detach(): AgentProcess | undefined {
    const proc = this.live;
    this.live = undefined;
    return proc;
  }

  /** Ends `proc` (see `AgentProcess.end`); if it is still the live one afterwards, it is detached. */
  async end(proc: AgentProcess, options: { graceful: boolean }): Promise<void> {
    await proc.end(options);
    if (this.live === proc) this.options.onEnded(proc, new Error('stopped'));
  }

  /** Ends a detached subprocess after the others; resolves when all of them are gone. */
  retire(proc: AgentProcess, options: { graceful: boolean }): Promise<void> {
    return this.chain(this.end(proc, options));
  }

  /** Work the next start must wait for as well (a suspension); resolves when all of it is over. */
  chain(work: Promise<unknown>): Promise<void> {
    const previous = this.retiring;
    this.retiring = Promise.all([previous, work]).then(
      () => undefined,
      (err: unknown) => this.options.report(err),
    );
    return this.retiring;
  }

  /** Resolves when every retired subprocess is gone and the chained work is over. */
  settled(): Promise<void> {
    return this.retiring ?? Promise.resolve();
  }
}
