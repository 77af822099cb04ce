/**
 * Where a task's results live once its sandbox is gone: the blob store. Key layout:
 *
 *   tasks/<tenant>/<task id>/task.json       the record (written at creation, again when final)
 *   tasks/<tenant>/<task id>/events.json     the task's events, for streams opened after it ended
 *   tasks/<tenant>/<task id>/artifacts/<n>   the bytes of the record's artifacts[n]
 *
 * Artifacts are stored by index, not by path: a path may hold characters that blob keys cannot, and
 * a request for an artifact is answered by looking its path up in the record, never by building a key
 * (or a file name) from what the client sent.
 */
import type { Readable } from 'node:stream';
import { describeError } from '../errors.js';
import type { BlobStore } from '../workspace/blob-store.js';
import type { TaskEvent, TaskRecord } from './task.js';

export class TaskStore {
  constructor(private readonly blob: BlobStore) {}

  private prefix(tenant: string, id: string): string {
    return `tasks/${tenant}/${id}`;
  }

  putRecord(tenant: string, record: TaskRecord): Promise<void> {
    return this.blob.putBuffer(
      `${this.prefix(tenant, record.id)}/task.json`,
      Buffer.from(JSON.stringify(record)),
    );
  }

  async getRecord(tenant: string, id: string): Promise<TaskRecord | undefined> {
    const data = await this.blob.getBuffer(`${this.prefix(tenant, id)}/task.json`);
    return data ? parse<TaskRecord>(data, `task ${id}'s record`) : undefined;
  }

  putEvents(tenant: string, id: string, events: readonly TaskEvent[]): Promise<void> {
    return this.blob.putBuffer(`${this.prefix(tenant, id)}/events.json`, Buffer.from(JSON.stringify(events)));
  }

  async getEvents(tenant: string, id: string): Promise<TaskEvent[] | undefined> {
    const data = await this.blob.getBuffer(`${this.prefix(tenant, id)}/events.json`);
    return data ? parse<TaskEvent[]>(data, `task ${id}'s events`) : undefined;
  }

  /** Stores artifact `index` from `file` (which may be a `/proc/self/fd/N` link). */
  putArtifact(tenant: string, id: string, index: number, file: string): Promise<void> {
    return this.blob.putFile(`${this.prefix(tenant, id)}/artifacts/${index}`, file);
  }

  openArtifact(
    tenant: string,
    id: string,
    index: number,
  ): Promise<{ stream: NodeJS.ReadableStream | Readable; size: number } | undefined> {
    return this.blob.openRead(`${this.prefix(tenant, id)}/artifacts/${index}`);
  }

  /** Removes the task's artifacts (those of an attempt that failed half way). */
  deleteArtifacts(tenant: string, id: string): Promise<void> {
    return this.blob.deletePrefix(`${this.prefix(tenant, id)}/artifacts`);
  }
}

function parse<T>(data: Buffer, what: string): T {
  try {
    return JSON.parse(data.toString('utf8')) as T;
  } catch (err) {
    throw new Error(`${what} in the blob store is not JSON: ${describeError(err)}`, { cause: err });
  }
}
