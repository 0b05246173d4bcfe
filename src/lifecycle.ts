/** One part that runs in the background: what starts it and what stops it. */
export interface Stage {
  name: string;
  start?(): void | Promise<void>;
  stop?(): void | Promise<void>;
}

/**
 * The order in which the parts start, written once: they start first to last, and stop last to
 * first, so that nothing stops while a part still running needs it. A stop that fails does not
 * keep the rest from stopping; the first failure is thrown once all have run.
 */
export class Lifecycle {
  #started: Stage[] = [];

  constructor(private readonly stages: readonly Stage[]) {}

  async start(): Promise<void> {
    for (const s of this.stages) {
      await s.start?.();
      this.#started.push(s);
    }
  }

  async stop(): Promise<void> {
    let failure: unknown = null;
    for (const s of this.#started.reverse()) {
      try {
        await s.stop?.();
      } catch (err) {
        failure ??= err;
      }
    }
    this.#started = [];
    if (failure !== null) throw failure;
  }
}
