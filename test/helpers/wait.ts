/**
 * Polls until `check` holds, every `everyMs`; the bound only keeps a failure from hanging. `what` names the
 * condition in the failure; a function is called then, so the message can say what was seen last.
 */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string | (() => string),
  { boundMs = 30_000, everyMs = 100 }: { boundMs?: number; everyMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${boundMs} ms waiting for ${typeof what === 'string' ? what : what()}`,
      );
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
