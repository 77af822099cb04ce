/** Calling an SDK `PreToolUse` hook the way the CLI does, for unit tests of tool policies. */
import type { HookCallbackMatcher, PreToolUseHookInput } from '@anthropic-ai/claude-agent-sdk';

/** The input the CLI gives a `PreToolUse` hook for a use of `toolName`. */
export function preToolUse(toolName: string): PreToolUseHookInput {
  return {
    hook_event_name: 'PreToolUse',
    tool_name: toolName,
    tool_input: {},
    tool_use_id: 'toolu_1',
    session_id: 's',
    transcript_path: '/t',
    cwd: '/work',
  };
}

/** What each of `matcher`'s hooks answers for a use of `toolName`. */
export async function answers(
  matcher: HookCallbackMatcher | undefined,
  toolName: string,
): Promise<unknown[]> {
  const signal = new AbortController().signal;
  return Promise.all((matcher?.hooks ?? []).map((hook) => hook(preToolUse(toolName), 'toolu_1', { signal })));
}

/** The permission decision of `matcher`'s first hook for a use of `toolName` (undefined: none). */
export async function decisionOf(
  matcher: HookCallbackMatcher | undefined,
  toolName: string,
): Promise<string | undefined> {
  const [answer] = (await answers(matcher, toolName)) as (
    { hookSpecificOutput?: { permissionDecision?: string } } | undefined
  )[];
  return answer?.hookSpecificOutput?.permissionDecision;
}
