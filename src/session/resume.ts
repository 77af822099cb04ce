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
 * 2. Its cost baseline. The CLI keeps the cumulative cost of a session's last process in its config
 *    (`.claude.json`, `projects[<cwd>].lastCost` with `lastSessionId`) and restores it when it resumes that
 *    session, so the first `result` of a resumed process reports the earlier processes' cost again.
 *    {@link readCostBaseline} reads what the CLI will restore, so that a turn's cost is the difference.
 */
import { cpSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
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
  return { ...request, env: { ...request.env, CLAUDE_CONFIG_DIR: configDir } };
}

/**
 * The cumulative cost a CLI resuming `sessionId` in `cwd` will start from: the `lastCost` it saved for
 * that session in `configDir/.claude.json`, or 0 when it saved none (another host, a first process).
 */
export async function readCostBaseline(configDir: string, cwd: string, sessionId: string): Promise<number> {
  let text: string;
  try {
    text = await readFile(path.join(configDir, '.claude.json'), 'utf8');
  } catch {
    return 0;
  }
  try {
    const config = JSON.parse(text) as {
      projects?: Record<string, { lastSessionId?: unknown; lastCost?: unknown }>;
    };
    const project = config.projects?.[cwd];
    if (project?.lastSessionId !== sessionId || typeof project.lastCost !== 'number') return 0;
    return Number.isFinite(project.lastCost) && project.lastCost > 0 ? project.lastCost : 0;
  } catch {
    // Unreadable (a CLI rewriting it right now): count from 0; at worst this one turn's cost then
    // includes what the CLI restored.
    return 0;
  }
}
