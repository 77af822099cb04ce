/** Cleanup steps run last-added first, each once, every one even if another fails (`run` is idempotent). */
export class Cleanups {
  private readonly steps: Array<() => Promise<void>> = [];
  private running: Promise<void> | undefined;

  constructor(private readonly onError: (err: unknown) => void) {}

  add(step: () => Promise<void>): void {
    this.steps.push(step);
  }

  run(): Promise<void> {
    this.running ??= (async () => {
      for (const step of this.steps.reverse()) await step().catch(this.onError);
    })();
    return this.running;
  }
}
