import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DirBlobStore } from './dir-blob-store.js';
import { WorkspaceSync } from './workspace-sync.js';

const dirs: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'berth-sync-'));
  dirs.push(dir);
  return dir;
}
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

const ref = { tenant: 'acme', id: 's1' };

/** Two hosts (data dirs) sharing one blob store. */
async function twoHosts() {
  const blob = new DirBlobStore({ root: await tempDir() });
  const make = async () => {
    const dataDir = await tempDir();
    const sync = new WorkspaceSync({ blob, dataDir, maxSnapshotBytes: 1024 * 1024 });
    return { sync, cwd: path.join(dataDir, 'workspaces', ref.tenant, ref.id) };
  };
  return { blob, a: await make(), b: await make() };
}

describe('WorkspaceSync', () => {
  it('snapshots only copies a subprocess ran in, and another host restores the latest', async () => {
    const { a, b } = await twoHosts();
    // Nothing ran on A yet: nothing to save.
    expect(await a.sync.save(ref, a.cwd)).toBeUndefined();
    expect(await a.sync.prepare(ref, a.cwd)).toBe('kept');
    await writeFile(path.join(a.cwd, 'plan.txt'), 'v1');
    expect(await a.sync.save(ref, a.cwd)).toMatchObject({ files: 1, bytes: 2 });
    // Saved already: a second suspension has nothing new to save.
    expect(await a.sync.save(ref, a.cwd)).toBeUndefined();

    expect(await b.sync.prepare(ref, b.cwd)).toBe('restored');
    expect(await readFile(path.join(b.cwd, 'plan.txt'), 'utf8')).toBe('v1');
    await writeFile(path.join(b.cwd, 'plan.txt'), 'v2');
    await b.sync.save(ref, b.cwd);

    // A's copy is v1's: it restores v2 instead of running on its stale copy.
    expect(await a.sync.prepare(ref, a.cwd)).toBe('restored');
    expect(await readFile(path.join(a.cwd, 'plan.txt'), 'utf8')).toBe('v2');
  });

  it('never lets a host that did not run the session overwrite its snapshot', async () => {
    const { a, b } = await twoHosts();
    await a.sync.prepare(ref, a.cwd);
    await writeFile(path.join(a.cwd, 'plan.txt'), 'real work');
    await a.sync.save(ref, a.cwd);
    // B has an empty (or stale) directory but never ran the session: drain/suspend on B saves nothing.
    expect(await b.sync.save(ref, b.cwd)).toBeUndefined();
    await b.sync.prepare(ref, b.cwd);
    expect(await readFile(path.join(b.cwd, 'plan.txt'), 'utf8')).toBe('real work');
  });

  it('keeps unsaved work on this host rather than restoring over it, and lists it', async () => {
    const { a } = await twoHosts();
    await a.sync.prepare(ref, a.cwd);
    await writeFile(path.join(a.cwd, 'plan.txt'), 'v1');
    await a.sync.save(ref, a.cwd);
    await a.sync.prepare(ref, a.cwd);
    await writeFile(path.join(a.cwd, 'plan.txt'), 'unsaved edit');
    expect(await a.sync.fetch(ref, a.cwd)).toBe(false);
    expect(await readFile(path.join(a.cwd, 'plan.txt'), 'utf8')).toBe('unsaved edit');
    expect(await a.sync.unsaved()).toEqual([ref]);
  });

  it('prefetch and prepare never restore over each other, and remove deletes every snapshot', async () => {
    const { blob, a, b } = await twoHosts();
    await a.sync.prepare(ref, a.cwd);
    await writeFile(path.join(a.cwd, 'plan.txt'), 'v1');
    await a.sync.save(ref, a.cwd);
    const [fetched, prepared] = await Promise.all([b.sync.fetch(ref, b.cwd), b.sync.prepare(ref, b.cwd)]);
    expect(fetched).toBe(true);
    expect(prepared).toBe('kept');
    expect(await readdir(b.cwd)).toEqual(['plan.txt']);
    await a.sync.remove(ref);
    expect(await blob.getBuffer('workspaces/acme/s1/current')).toBeUndefined();
  });
});
