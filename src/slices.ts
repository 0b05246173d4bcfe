/**
 * Big admin work (importing, exporting or deleting 100,000 keys) shares the event loop with
 * the gateway. It runs in slices of a few milliseconds and yields between them, so that a
 * search arriving meanwhile waits for one slice, not for the whole job.
 */

/** How long one slice may run before it yields. */
export const SLICE_MS = 5;

/**
 * Lets everything that is waiting (I/O callbacks, timers, other requests) run, and pauses
 * the job for a millisecond: between slices the process gives way to the gateway's requests
 * and to the other processes on the machine, as a background job should. (A bare
 * setImmediate would run the next slice in the same loop turn's wake, keeping the thread
 * busy without a break.)
 */
export function yieldToLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 1));
}

/**
 * Paces one job: `breathe()` yields to the event loop once the job has run SLICE_MS since it
 * last did, and costs a clock read otherwise. Small jobs never pause; big ones pause every
 * few milliseconds.
 */
export class Slicer {
  #since = performance.now();

  constructor(private readonly budgetMs = SLICE_MS) {}

  async breathe(): Promise<void> {
    if (performance.now() - this.#since < this.budgetMs) return;
    await yieldToLoop();
    this.#since = performance.now();
  }
}

/**
 * Calls `fn` for every item, yielding to the event loop whenever a slice has run its budget.
 * The clock is read every 32 items: cheap enough for per-item work of a microsecond.
 */
export async function forEachSliced<T>(items: readonly T[], fn: (item: T, index: number) => void, slicer = new Slicer()): Promise<void> {
  for (let i = 0; i < items.length; i++) {
    fn(items[i]!, i);
    if ((i & 31) === 31) await slicer.breathe();
  }
}

/** `items` in consecutive chunks of `size`. */
export function chunks<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** Runs `fn` on each chunk in turn (a statement each, say), yielding between them when the job has run its slice. */
export async function eachChunk<T, R>(items: readonly T[], size: number, fn: (chunk: T[]) => Promise<R>, slicer = new Slicer()): Promise<R[]> {
  const out: R[] = [];
  for (const part of chunks(items, size)) {
    out.push(await fn(part));
    await slicer.breathe();
  }
  return out;
}
