/** A monotonic clock where there is one: a wall-clock jump must not stall or burst the pacing. */
export const now: () => number = typeof globalThis.performance?.now === 'function'
  ? () => globalThis.performance.now()
  : () => Date.now()

/**
 * The client's own rate window: at most `max` frames in any `windowMs` span
 * (a sliding window). The server counts in fixed windows that start wherever
 * its first message fell, so a client that keeps every sliding span under the
 * server's `max` never overruns it; keeping well under leaves room for frames
 * the network delivers closer together than they were sent.
 */
export class SendWindow {
  readonly #times: number[] = []
  readonly #max: number
  readonly #windowMs: number

  constructor (max: number, windowMs: number) {
    this.#max = max
    this.#windowMs = windowMs
  }

  /** ms until one more frame fits (0: now). */
  wait (at = now()): number {
    const times = this.#times
    while (times.length > 0 && at - times[0] >= this.#windowMs) times.shift()
    if (times.length < this.#max) return 0
    return Math.max(1, Math.ceil(times[times.length - this.#max] + this.#windowMs - at))
  }

  /** Count a frame written now. */
  record (at = now()): void {
    this.#times.push(at)
  }
}
