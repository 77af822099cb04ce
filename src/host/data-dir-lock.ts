/**
 * One host per data dir. A second host on the same data dir would take the first one's live agents for
 * orphans and kill them, and remove directories the first one uses, so the lock is the first thing a host
 * takes and the last it gives back.
 *
 * On disk: `<data dir>/berth.lock`, two lines: the holder's pid, then its start time (field 22 of
 * /proc/PID/stat, clock ticks since boot), which tells a live holder from an unrelated process that was
 * given the same pid after the holder died.
 *
 * Invariants:
 * - the file appears with its content in one step (written aside, then hard-linked into place; `link`
 *   fails if the name exists), so a reader never sees a half-written lock;
 * - a lock whose holder is dead (or whose pid now names another process) is stale and is taken over: it is
 *   first renamed aside, which only one taker can do, and the taker checks that what it moved is the stale
 *   lock it judged, putting back a live one it moved by accident;
 * - only the holder removes the file, and only while it still holds its own content.
 * The pid check only means something on one machine: a data dir shared by hosts over a network file system
 * is not supported (each host needs its own).
 */
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { link, mkdir, readFile, rename, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { BerthError } from '../errors.js';

export interface DataDirLock {
  /** The data dir, absolute. */
  readonly dataDir: string;
  /** Whether this process still holds the lock (until {@link DataDirLock.release}). */
  readonly held: boolean;
  /** Removes the lock file (idempotent). */
  release(): Promise<void>;
}

/** The lock's name in the data dir. */
export const LOCK_FILE = 'berth.lock';

/** A stale lock can be taken over this many times in a row before the host gives up. */
const MAX_ATTEMPTS = 3;

interface Holder {
  pid: number;
  /** Undefined when the file did not say. */
  startTime: string | undefined;
  text: string;
}

/**
 * Takes the data dir's lock (making the data dir if needed).
 * @throws BerthError `data_dir_locked` naming the holder's pid when another live process holds it.
 */
export async function lockDataDir(dataDir: string): Promise<DataDirLock> {
  const root = path.resolve(dataDir);
  const file = path.join(root, LOCK_FILE);
  await mkdir(root, { recursive: true });
  const text = `${process.pid}\n${startTimeOf(process.pid) ?? ''}\n`;
  const aside = `${file}.${process.pid}.${randomUUID()}`;
  await writeFile(aside, text, { mode: 0o644 });
  try {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      try {
        await link(aside, file);
        return heldLock(root, file, text);
      } catch (err) {
        if (errnoOf(err) !== 'EEXIST') throw err;
      }
      const holder = await readHolder(file);
      if (!holder) continue; // released between our link and our read
      if (isAlive(holder)) {
        throw new BerthError(
          'data_dir_locked',
          `The data dir ${root} is in use by another berth process (pid ${holder.pid}, lock ${file}): stop it, or give this one another --data-dir`,
        );
      }
      await takeOverStale(file, holder);
    }
    throw new BerthError(
      'data_dir_locked',
      `Could not lock the data dir ${root}: other processes keep taking ${file}`,
    );
  } finally {
    await unlink(aside).catch(() => undefined);
  }
}

function heldLock(dataDir: string, file: string, text: string): DataDirLock {
  let releasing: Promise<void> | undefined;
  return {
    dataDir,
    get held() {
      return releasing === undefined;
    },
    release() {
      releasing ??= (async () => {
        const now = await readFile(file, 'utf8').catch(() => undefined);
        // Removed or taken over by someone who judged us dead: theirs now.
        if (now === text) await unlink(file).catch(() => undefined);
      })();
      return releasing;
    },
  };
}

/** Moves a stale lock out of the way; a live one moved by accident (another taker was faster) goes back. */
async function takeOverStale(file: string, stale: Holder): Promise<void> {
  const moved = `${file}.stale.${randomUUID()}`;
  try {
    await rename(file, moved);
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return;
    throw err;
  }
  const text = await readFile(moved, 'utf8').catch(() => undefined);
  if (text !== undefined && text !== stale.text) {
    await link(moved, file).catch(() => undefined);
  }
  await unlink(moved).catch(() => undefined);
}

async function readHolder(file: string): Promise<Holder | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if (errnoOf(err) === 'ENOENT') return undefined;
    throw err;
  }
  const [pidLine, startLine] = text.split('\n');
  return { pid: Number(pidLine), startTime: startLine || undefined, text };
}

/** Whether the lock's holder is still running (another user's process counts: it may not be killed). */
export function isAlive(holder: Pick<Holder, 'pid' | 'startTime'>): boolean {
  if (!Number.isInteger(holder.pid) || holder.pid <= 0) return false;
  try {
    process.kill(holder.pid, 0);
  } catch (err) {
    if (errnoOf(err) !== 'EPERM') return false;
  }
  if (holder.startTime === undefined) return true;
  const now = startTimeOf(holder.pid);
  // The pid was given to another process after the holder died.
  return now === undefined || now === holder.startTime;
}

/** Field 22 of /proc/PID/stat (the start time, in clock ticks since boot); undefined where unreadable. */
function startTimeOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The fields after the command name (which may hold spaces) start at field 3.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[22 - 3];
  } catch {
    return undefined;
  }
}

function errnoOf(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}
