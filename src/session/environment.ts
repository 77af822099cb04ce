/**
 * The subprocess environment, built from nothing: `options.env` replaces the CLI's environment (the
 * SDK passes it instead of the server's, not merged with it), and nothing of the server's own
 * environment (its credentials, its database URLs) may reach the agent unless the agent needs it to run.
 */

export interface AgentEnvOptions {
  /** The Messages API the CLI talks to (`ANTHROPIC_BASE_URL`). */
  modelEndpoint: string;
  /** The key the CLI sends; a placeholder for the scripted model. */
  apiKey: string;
  /** Per-tenant `CLAUDE_CONFIG_DIR`: concurrent processes corrupt a shared `~/.claude.json`. */
  configDir: string;
  /** Per-tenant `HOME`, so nothing in the host user's home (e.g. `~/.claude/CLAUDE.md`) is read. */
  home: string;
  /** `PATH` for the agent's tools. */
  path: string;
  /** Extra variables an operator passes through on purpose. */
  extra?: Readonly<Record<string, string>>;
}

export function buildAgentEnv(options: AgentEnvOptions): Record<string, string> {
  return {
    PATH: options.path,
    HOME: options.home,
    LANG: 'C.UTF-8',
    SHELL: '/bin/bash',
    TMPDIR: '/tmp',
    ...options.extra,
    ANTHROPIC_BASE_URL: options.modelEndpoint,
    ANTHROPIC_API_KEY: options.apiKey,
    CLAUDE_CONFIG_DIR: options.configDir,
    CLAUDE_CODE_DISABLE_AUTO_MEMORY: '1',
    // A hosted agent has no user at a terminal: no update checks, no telemetry.
    DISABLE_AUTOUPDATER: '1',
    DISABLE_TELEMETRY: '1',
    DISABLE_ERROR_REPORTING: '1',
  };
}
