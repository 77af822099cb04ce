/**
 * A session's registry record as the session last wrote it. Writes are serialised, so that a later patch
 * never lands before an earlier one; a write that fails is reported and the next one goes on.
 */
import type { SessionRecord, SessionRegistry } from '../stores/types.js';

export class RecordWriter {
  private record: SessionRecord;
  private writing: Promise<void> = Promise.resolve();

  constructor(
    private readonly registry: SessionRegistry,
    initial: SessionRecord,
    private readonly report: (err: unknown) => void,
  ) {
    this.record = initial;
  }

  get current(): SessionRecord {
    return this.record;
  }

  /** Applies `patch` here at once and queues its write. */
  write(patch: Partial<SessionRecord>): void {
    this.record = { ...this.record, ...patch, updatedAt: Date.now() };
    const ref = { tenant: this.record.tenant, id: this.record.id };
    this.writing = this.writing.then(() =>
      this.registry.update(ref, patch).catch((err: unknown) => this.report(err)),
    );
  }

  /**
   * Writes `patch` after every queued write, and applies it here only once the registry has it: a client
   * that is told its change was made must find it after a restart. Throws what the registry threw.
   */
  async writeNow(patch: Partial<SessionRecord>): Promise<void> {
    const done = this.writing.then(() =>
      this.registry.update({ tenant: this.record.tenant, id: this.record.id }, patch),
    );
    this.writing = done.catch(() => undefined);
    await done;
    this.record = { ...this.record, ...patch, updatedAt: Date.now() };
  }

  /** Resolves once every write queued so far has been tried. */
  written(): Promise<void> {
    return this.writing;
  }
}
