/**
 * Keeps each session's working directory in step with its snapshots in the blob store, so that a
 * suspended session hydrates with its files on any host.
 *
 * Blob keys (one session):
 *   workspaces/<tenant>/<session id>/current            the version of the latest complete snapshot
 *   workspaces/<tenant>/<session id>/<version>.tar.gz   that snapshot
 * A new snapshot is uploaded under a new version before `current` points at it, so a reader never sees
 * a half-written one; the previous version is deleted afterwards.
 *
 * A marker file beside the working directory (`workspaces/<tenant>/<session id>.snapshot` under the
 * data dir; ids never contain a dot, so it cannot be a session's directory) says what this host's copy is:
 *   absent      nothing of this session ran here: restore `current` before a start, never snapshot it;
 *   <version>   an untouched copy of that snapshot: restore only if `current` moved on;
 *   `unsaved`   a subprocess ran here since: this copy is the newest, snapshot it when suspending.
 * The marker is on disk, so a host that restarts on its data dir still knows which copies hold work.
 *
 * With a tracer, each restore and snapshot is a span (`berth.workspace.restore`, `berth.workspace.snapshot`)
 * under whatever span is active: a turn's hydrate step, a suspension.
 */
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { Tracer } from '@opentelemetry/api';
import { ID_PATTERN } from '../ids.js';
import { inSpan } from '../observe/spans.js';
import type { SessionRef } from '../stores/types.js';
import type { BlobStore } from './blob-store.js';
import { restoreWorkspace, snapshotWorkspace, type SnapshotInfo } from './snapshot.js';

const UNSAVED = 'unsaved';
const MARKER_SUFFIX = '.snapshot';

export interface WorkspaceSyncOptions {
  blob: BlobStore;
  dataDir: string;
  /** The largest workspace (uncompressed) a snapshot may hold. */
  maxSnapshotBytes: number;
  /** Records restores and snapshots as spans; given only when tracing is on. @default none */
  tracer?: Tracer | undefined;
}

export class WorkspaceSync {
  private readonly root: string;
  private readonly tmpDir: string;
  /** The last operation on each session's copy (`tenant/id`), so that restores and snapshots never overlap. */
  private readonly inflight = new Map<string, Promise<void>>();

  constructor(private readonly options: WorkspaceSyncOptions) {
    this.root = path.join(path.resolve(options.dataDir), 'workspaces');
    this.tmpDir = path.join(path.resolve(options.dataDir), 'tmp');
  }

  get blob(): BlobStore {
    return this.options.blob;
  }

  /**
   * Restores the latest snapshot into `cwd` unless this host's copy is as new (or holds unsaved work).
   * The host calls it as soon as it loads a suspended session, so that the download overlaps with the
   * client's next request; `prepare` then finds the copy current.
   */
  fetch(ref: SessionRef, cwd: string): Promise<boolean> {
    return this.serialized(ref, () => this.restoreIfStale(ref, cwd));
  }

  /** Before a subprocess starts in `cwd`: the latest snapshot restored if needed, then marked `unsaved`. */
  prepare(ref: SessionRef, cwd: string): Promise<'restored' | 'kept'> {
    return this.serialized(ref, async () => {
      const restored = await this.restoreIfStale(ref, cwd);
      await mkdir(cwd, { recursive: true });
      // From here on the subprocess may change files: this copy is the newest.
      await this.writeMarker(ref, UNSAVED);
      return restored ? 'restored' : 'kept';
    });
  }

  private async restoreIfStale(ref: SessionRef, cwd: string): Promise<boolean> {
    const marker = await this.readMarker(ref);
    if (marker === UNSAVED) return false;
    const current = await this.current(ref);
    if (current === undefined || current === marker) return false;
    await mkdir(this.tmpDir, { recursive: true });
    const attributes = { ...spanAttributes(ref), 'berth.workspace.version': current };
    return inSpan(this.options.tracer, 'berth.workspace.restore', attributes, async (span) => {
      const restored = await restoreWorkspace(cwd, this.options.blob, snapshotKey(ref, current), {
        tmpDir: this.tmpDir,
      });
      span?.setAttribute('berth.workspace.restored', restored);
      if (restored) await this.writeMarker(ref, current);
      return restored;
    });
  }

  /** Runs `work` after every earlier operation on the same session's copy has settled. */
  private serialized<T>(ref: SessionRef, work: () => Promise<T>): Promise<T> {
    const key = `${ref.tenant}/${ref.id}`;
    const previous = this.inflight.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.then(
      () => undefined,
      () => undefined,
    );
    this.inflight.set(key, settled);
    void settled.then(() => {
      if (this.inflight.get(key) === settled) this.inflight.delete(key);
    });
    return next;
  }

  /** Snapshots `cwd` if work ran here since the last snapshot; undefined when there was nothing to save. */
  save(ref: SessionRef, cwd: string): Promise<SnapshotInfo | undefined> {
    return this.serialized(ref, () => this.saveNow(ref, cwd));
  }

  private async saveNow(ref: SessionRef, cwd: string): Promise<SnapshotInfo | undefined> {
    if ((await this.readMarker(ref)) !== UNSAVED) return undefined;
    const version = `${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`;
    const attributes = { ...spanAttributes(ref), 'berth.workspace.version': version };
    return inSpan(this.options.tracer, 'berth.workspace.snapshot', attributes, async (span) => {
      await mkdir(this.tmpDir, { recursive: true });
      await mkdir(cwd, { recursive: true });
      const info = await snapshotWorkspace(cwd, this.options.blob, snapshotKey(ref, version), {
        maxBytes: this.options.maxSnapshotBytes,
        tmpDir: this.tmpDir,
      });
      span?.setAttributes({
        'berth.workspace.bytes': info.bytes,
        'berth.workspace.files': info.files,
        'berth.workspace.stored_bytes': info.storedBytes,
      });
      const previous = await this.current(ref);
      await this.options.blob.putBuffer(currentKey(ref), Buffer.from(version));
      await this.writeMarker(ref, version);
      if (previous !== undefined && previous !== version) {
        await this.options.blob.delete(snapshotKey(ref, previous));
      }
      return info;
    });
  }

  /** Deletes the session's snapshots and marker. */
  async remove(ref: SessionRef): Promise<void> {
    await this.options.blob.deletePrefix(prefix(ref));
    await rm(this.markerPath(ref), { force: true });
  }

  /** Sessions whose copy on this host holds work that is in no snapshot (for a drain after a restart). */
  async unsaved(): Promise<SessionRef[]> {
    const refs: SessionRef[] = [];
    const tenants = await readdir(this.root).catch(() => [] as string[]);
    for (const tenant of tenants.filter((t) => ID_PATTERN.test(t))) {
      const names = await readdir(path.join(this.root, tenant)).catch(() => [] as string[]);
      for (const name of names) {
        const id = name.slice(0, -MARKER_SUFFIX.length);
        if (!name.endsWith(MARKER_SUFFIX) || !ID_PATTERN.test(id)) continue;
        if ((await this.readMarker({ tenant, id })) === UNSAVED) refs.push({ tenant, id });
      }
    }
    return refs;
  }

  private async current(ref: SessionRef): Promise<string | undefined> {
    const data = await this.options.blob.getBuffer(currentKey(ref));
    return data?.toString('utf8').trim() || undefined;
  }

  private markerPath(ref: SessionRef): string {
    return path.join(this.root, ref.tenant, `${ref.id}${MARKER_SUFFIX}`);
  }

  private async readMarker(ref: SessionRef): Promise<string | undefined> {
    try {
      return (await readFile(this.markerPath(ref), 'utf8')).trim() || undefined;
    } catch {
      return undefined;
    }
  }

  private async writeMarker(ref: SessionRef, value: string): Promise<void> {
    await mkdir(path.dirname(this.markerPath(ref)), { recursive: true });
    await writeFile(this.markerPath(ref), value);
  }
}

function spanAttributes(ref: SessionRef): Record<string, string> {
  return { 'berth.tenant': ref.tenant, 'berth.session_id': ref.id };
}

function prefix(ref: SessionRef): string {
  return `workspaces/${ref.tenant}/${ref.id}`;
}

function currentKey(ref: SessionRef): string {
  return `${prefix(ref)}/current`;
}

function snapshotKey(ref: SessionRef, version: string): string {
  return `${prefix(ref)}/${version}.tar.gz`;
}
