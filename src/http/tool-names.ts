/**
 * Tool names as Managed Agents shows them (`bash`, `read`, ...) and as the `claude` CLI knows them
 * (`Bash`, `Read`, ...). The API speaks only the first; the SDK options and the CLI's events only the
 * second. A CLI tool outside this table (an MCP tool `mcp__server__tool`, the CLI's own `TodoWrite`)
 * keeps its CLI name in events.
 */

/** Managed Agents' agent toolset (`agent_toolset_20260401`), each with its CLI name. */
export const TOOLSET_TOOLS = {
  bash: 'Bash',
  read: 'Read',
  write: 'Write',
  edit: 'Edit',
  glob: 'Glob',
  grep: 'Grep',
  web_fetch: 'WebFetch',
  web_search: 'WebSearch',
} as const;

export type ApiToolName = keyof typeof TOOLSET_TOOLS;

export const API_TOOL_NAMES = Object.keys(TOOLSET_TOOLS) as ApiToolName[];

const FROM_CLI: ReadonlyMap<string, ApiToolName> = new Map(
  API_TOOL_NAMES.map((name) => [TOOLSET_TOOLS[name], name]),
);

/** The API name of a CLI tool (`Bash` -> `bash`); other names are returned unchanged. */
export function apiToolName(cliName: string): string {
  return FROM_CLI.get(cliName) ?? cliName;
}

/** The CLI name of a toolset tool (`bash` -> `Bash`). */
export function cliToolName(apiName: ApiToolName): string {
  return TOOLSET_TOOLS[apiName];
}
