import type { OutgoingEnvelope } from './types.js'

type Timer = ReturnType<typeof setTimeout>

/**
 * Messages sent while offline: bounded (the oldest goes first), then flushed
 * after a reconnect in paced steps, so a long backlog stays under the
 * server's rate limit (past twice it, the server closes with 4429).
 */
export class OfflineQueue {
  readonly #messages: OutgoingEnvelope[] = []
  readonly #max: number
  readonly #batch: number
  readonly #interval: number
  #timer: Timer | undefined

  constructor (max: number, batch: number, interval: number) {
    this.#max = max
    this.#batch = batch
    this.#interval = interval
  }

  get length (): number {
    return this.#messages.length
  }

  /** Queue `msg`; calls `drop` with each message the bound lets go. */
  push (msg: OutgoingEnvelope, drop: (msg: OutgoingEnvelope) => void): void {
    this.#messages.push(msg)
    while (this.#messages.length > this.#max) drop(this.#messages.shift() as OutgoingEnvelope)
  }

  /** Take everything out now (to put back with `restore`). */
  takeAll (): OutgoingEnvelope[] {
    return this.#messages.splice(0)
  }

  /** Put back what `takeAll` took, ahead of anything queued since. */
  restore (messages: OutgoingEnvelope[]): void {
    this.#messages.unshift(...messages)
  }

  /** Send one step with `write` now, and the rest step by step while `canWrite()` holds. */
  flush (write: (msg: OutgoingEnvelope) => void, canWrite: () => boolean): void {
    this.#timer = undefined
    if (!canWrite()) return
    for (const msg of this.#messages.splice(0, this.#batch)) write(msg)
    if (this.#messages.length > 0) this.#timer = setTimeout(() => this.flush(write, canWrite), this.#interval)
  }

  /** Stop flushing; what is left stays queued for the next connection. */
  pause (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
  }

  clear (): void {
    this.pause()
    this.#messages.length = 0
  }
}
