/**
 * The isolation check a group passes before any of its sessions exists (the multi-agent pattern,
 * README): agents share the bus and, when asked, one directory, and nothing else.
 */
import path from 'node:path';
import { BerthError } from '../errors.js';
import type { SessionPaths } from '../session/session.js';

/** What the isolation check looks at for one agent. */
export interface AgentIsolationPlan {
  name: string;
  paths: SessionPaths;
  /** The subprocess environment its session will get. */
  env: Readonly<Record<string, string>>;
}

/** `a` and `b` are the same directory, or one holds the other. */
function overlaps(a: string, b: string): boolean {
  const ra = path.resolve(a);
  const rb = path.resolve(b);
  return ra === rb || ra.startsWith(`${rb}${path.sep}`) || rb.startsWith(`${ra}${path.sep}`);
}

/**
 * The check a group passes before any of its sessions exists: each agent has its own working directory,
 * `CLAUDE_CONFIG_DIR` and `HOME`, none of them overlapping another agent's or the shared directory, and
 * its environment names those directories and turns auto memory off. (`settingSources: []` is applied by
 * `Session` to every subprocess, whatever the options.) Berth's layout makes a failure impossible by
 * construction; the check keeps it so.
 * @throws BerthError `isolation_failed`
 */
export function checkGroupIsolation(plans: readonly AgentIsolationPlan[], sharedDir: string | null): void {
  const fail = (why: string): never => {
    throw new BerthError('isolation_failed', `The group was refused: ${why}`);
  };
  for (const plan of plans) {
    const { paths, env } = plan;
    if (env.CLAUDE_CONFIG_DIR !== paths.configDir) {
      fail(`agent ${plan.name}'s CLAUDE_CONFIG_DIR is not its own config dir`);
    }
    if (env.HOME !== paths.home) fail(`agent ${plan.name}'s HOME is not its own home`);
    if (env.CLAUDE_CODE_DISABLE_AUTO_MEMORY !== '1') fail(`agent ${plan.name} would run with auto memory`);
    const own = [paths.cwd, paths.configDir, paths.home];
    if (sharedDir !== null) {
      for (const dir of own) {
        if (overlaps(dir, sharedDir)) fail(`a directory of agent ${plan.name} overlaps the shared directory`);
      }
    }
    for (const other of plans) {
      if (other === plan) continue;
      for (const dir of own) {
        for (const theirs of [other.paths.cwd, other.paths.configDir, other.paths.home]) {
          if (overlaps(dir, theirs)) fail(`agents ${plan.name} and ${other.name} would share ${dir}`);
        }
      }
    }
  }
}
