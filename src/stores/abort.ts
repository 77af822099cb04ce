/**
 * How a store call honours its caller's `AbortSignal` when its driver cannot: it does not start once the
 * signal has fired, and it stops waiting (the work itself may run on) when the signal fires meanwhile.
 * Either way the call rejects with `BerthError('aborted')` naming the call, its `cause` the signal's reason.
 * Drivers that take a signal (the AWS SDK's `abortSignal`, Node's streams and `fs` calls) get it passed
 * as well, so that they stop the work too.
 */
import { BerthError, describeError } from '../errors.js';

/** The rejection of a call that `signal` stopped. */
export function abortError(signal: AbortSignal, what: string): BerthError {
  const reason: unknown = signal.reason;
  const why = reason === undefined ? '' : `: ${describeError(reason)}`;
  return new BerthError('aborted', `${what} was aborted${why}`, { cause: reason });
}

/** Throws {@link abortError} when `signal` has fired. */
export function checkAborted(signal: AbortSignal | undefined, what: string): void {
  if (signal?.aborted) throw abortError(signal, what);
}

/**
 * `work()`, unless `signal` fires first: then the promise rejects with {@link abortError} at once, and
 * what `work` settles with later is dropped. `work` is not started when the signal has already fired.
 */
export function untilAborted<T>(
  signal: AbortSignal | undefined,
  what: string,
  work: () => Promise<T>,
): Promise<T> {
  if (!signal) return work();
  if (signal.aborted) return Promise.reject(abortError(signal, what));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(abortError(signal, what));
    signal.addEventListener('abort', onAbort, { once: true });
    let running: Promise<T>;
    try {
      running = work();
    } catch (err) {
      running = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    void running.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}
