/**
 * How the model proxy refuses a tenant whose spend has reached its budget (`--tenant-limits usd=N`), and how
 * a turn tells that refusal from the model's own rate limit.
 *
 * The refusal is a Messages API error (429 `rate_limit_error`, `x-should-retry: false`, so the CLI gives up
 * at once instead of retrying into a hang) whose message starts with {@link REFUSAL_PREFIX}. The CLI reports
 * a failed model request as an assistant message with `error` set and the API's message in its text; a
 * turn whose failed request carries the prefix ended for budget (`budget_exceeded`), not for `model_rate_limit`.
 */

const REFUSAL_PREFIX = 'budget_exceeded: tenant ';
const REFUSAL = /budget_exceeded: (tenant|session) \S+ has spent \$[0-9.]+ of its budget of \$[0-9.]+[^\n]*/;

/** The proxy's reply to a refused request. */
/** The proxy's reply to a request of a session past its own budget (the API's session `budget`). */
export function sessionBudgetRefusalBody(session: string, spentUsd: number, budgetUsd: number): string {
  const message = `budget_exceeded: session ${session} has spent $${spentUsd.toFixed(4)} of its budget of $${budgetUsd} (its max_list_cost); no model request is forwarded for it`;
  return JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message } });
}

export function budgetRefusalBody(tenant: string, spentUsd: number, budgetUsd: number): string {
  const message = `${REFUSAL_PREFIX}${tenant} has spent $${spentUsd.toFixed(4)} of its budget of $${budgetUsd} (--tenant-limits usd=${budgetUsd}); no model request is forwarded until the budget is raised`;
  return JSON.stringify({ type: 'error', error: { type: 'rate_limit_error', message } });
}

/**
 * The stream error of a failed model request whose assistant message (`content`, as the CLI wrote it)
 * carries the proxy's budget refusal; undefined for any other failure.
 */
export function budgetRefusal(content: unknown): { type: 'budget_exceeded'; message: string } | undefined {
  const blocks: unknown[] = typeof content === 'string' ? [{ type: 'text', text: content }] : [];
  if (Array.isArray(content)) blocks.push(...(content as unknown[]));
  for (const block of blocks) {
    const text = (block as { type?: unknown; text?: unknown } | null)?.text;
    if (typeof text !== 'string') continue;
    const found = REFUSAL.exec(text);
    if (found) {
      return { type: 'budget_exceeded', message: `The model request was refused: ${found[0]}` };
    }
  }
  return undefined;
}
