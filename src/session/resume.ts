/**
 * Two things a resumed subprocess needs that the SDK does not give it.
 *
 * 1. Its tenant's config dir. With `resume` and a `sessionStore`, the SDK loads the transcript from the
 *    store into a fresh `$TMPDIR/claude-resume-<uuid>/` (the server's TMPDIR), copies the config files
 *    there, and starts the CLI with `CLAUDE_CONFIG_DIR` pointing at it (measured with SDK 0.3.330). That
 *    loses an isolation lever, hides the process from the host's orphan sweep (which recognises Berth's
 *    processes by a config dir under the data dir), and leaves the directory behind when the host dies.
 *    {@link adoptResumedTranscript} runs in the spawn hook, after the SDK has materialised the
 *    transcript: it moves the transcript files into the tenant's config dir (the same relative paths,
 *    `projects/<project dir>/<session id>.jsonl` and its subagent files), removes the temporary
 *    directory and starts the CLI with the tenant's config dir. The store's copy is authoritative, as it
 *    is for the SDK: a local copy is replaced.
 *
 * 2. Its cost baseline. When a CLI exits it appends a `cost-state` entry to the session's transcript
 *    (`totalCostUSD`, the cumulative cost of the session so far), and a CLI that resumes the session
 *    restores it, so its first `result` reports the earlier processes' cost again (measured with SDK
 *    0.3.330: the first turn after a restart cost three turns). The entry travels with the transcript
 *    through the store, so this holds on any host. {@link readCostBaseline} reads the last one from the
 *    transcript the CLI is about to resume, so that a turn's cost is the difference.
 */
import { cpSync, existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { SpawnOptions } from '@anthropic-ai/claude-agent-sdk';

const RESUME_DIR_PREFIX = 'claude-resume-';

/**
 * The spawn request with the SDK's temporary resume directory folded into `configDir` (see the header).
 * A request that does not use one is returned as it is.
 */
export function adoptResumedTranscript(request: SpawnOptions, configDir: string): SpawnOptions {
  const used = request.env.CLAUDE_CONFIG_DIR;
  if (!used || path.resolve(used) === path.resolve(configDir)) return request;
  if (!path.basename(used).startsWith(RESUME_DIR_PREFIX)) {
    throw new Error(`the SDK asked for CLAUDE_CONFIG_DIR=${used}; this session's is ${configDir}`);
  }
  // Synchronous: the spawn hook must return the process. A transcript is a few MB at most.
  cpSync(path.join(used, 'projects'), path.join(configDir, 'projects'), { recursive: true, force: true });
  rmSync(used, { recursive: true, force: true });
  // In place: the SDK maps each transcript_mirror frame's file path to a store key against this very
  // object's CLAUDE_CONFIG_DIR, read at each frame. A copy would leave it at the removed temporary
  // directory, and the SDK would drop every frame of the resumed process (nothing after a resume would
  // reach the store), logging only at debug level.
  request.env.CLAUDE_CONFIG_DIR = configDir;
  return request;
}

/**
 * The cumulative cost a CLI resuming `sessionId` with `configDir` will start from: the `totalCostUSD` of
 * the last `cost-state` entry of its transcript, or 0 when there is none (a CLI that never exited
 * cleanly, or a transcript not on this disk). Synchronous: it runs in the spawn hook, right after the
 * transcript was put in place and before the CLI starts.
 */
export function readCostBaseline(configDir: string, sessionId: string): number {
  const file = findTranscriptSync(configDir, sessionId);
  if (!file) return 0;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return 0;
  }
  const at = text.lastIndexOf(COST_STATE_MARK);
  if (at < 0) return 0;
  const start = text.lastIndexOf('\n', at) + 1;
  const end = text.indexOf('\n', at);
  try {
    const entry = JSON.parse(text.slice(start, end < 0 ? undefined : end)) as { totalCostUSD?: unknown };
    const total = entry.totalCostUSD;
    return typeof total === 'number' && Number.isFinite(total) && total > 0 ? total : 0;
  } catch {
    // A line cut short by a crash mid-write: the CLI cannot restore from it either.
    return 0;
  }
}

const COST_STATE_MARK = '"type":"cost-state"';

/** `configDir/projects/<project dir>/<sessionId>.jsonl`, where the CLI keeps the session's transcript. */
function findTranscriptSync(configDir: string, sessionId: string): string | undefined {
  const projects = path.join(configDir, 'projects');
  let dirs: string[];
  try {
    dirs = readdirSync(projects);
  } catch {
    return undefined;
  }
  for (const dir of dirs) {
    const file = path.join(projects, dir, `${sessionId}.jsonl`);
    if (existsSync(file)) return file;
  }
  return undefined;
}
