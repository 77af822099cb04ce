/** Polls until `check` holds, every `everyMs`; the bound only keeps a failure from hanging. */
export async function eventually(
  check: () => Promise<boolean> | boolean,
  what: string,
  { boundMs = 30_000, everyMs = 100 }: { boundMs?: number; everyMs?: number } = {},
): Promise<void> {
  const deadline = Date.now() + boundMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
