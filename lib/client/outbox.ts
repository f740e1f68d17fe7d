import { now, type SendWindow } from './send-window.js'
import type { DropReason, OutgoingEnvelope } from './types.js'

type Timer = ReturnType<typeof setTimeout>

/** One frame waiting to go out. */
export interface Entry {
  /** the envelope as the app gave it (a `drop` event reports this one) */
  readonly msg: OutgoingEnvelope
  /** what goes on the wire: `msg`, or `msg` with an id the client added to follow it */
  wire: OutgoingEnvelope
  /** an app message (bounded, dropped oldest first); joins, leaves and auth are never dropped */
  readonly droppable: boolean
  /** re-joins after a reconnect go first, ahead of everything queued */
  readonly rejoin: boolean
  /** RATE_LIMITED refusals so far */
  retries: number
  /** order of creation: a retried entry goes back to its place */
  readonly seq: number
}

export interface OutboxHooks {
  /** true while a connection is open */
  canWrite: () => boolean
  /** put one entry on the wire */
  write: (entry: Entry) => void
  /** an entry the bound let go (`queue_full`) */
  drop: (entry: Entry, reason: DropReason) => void
}

/**
 * Everything on its way to the server: kept while offline (bounded, oldest app
 * message dropped first), then written in order at the pace `SendWindow`
 * allows. Re-joins after a reconnect go first; the rest waits behind a gate
 * until they are answered, so queued messages run with their rooms joined.
 */
export class Outbox {
  readonly #rejoins: Entry[] = []
  readonly #queue: Entry[] = []
  readonly #max: number
  readonly #window: SendWindow
  readonly #hooks: OutboxHooks
  #droppable = 0
  #seq = 0
  #gateOpen = true
  /** no frame before this time (a RATE_LIMITED refusal was answered) */
  #holdUntil = 0
  #timer: Timer | undefined

  constructor (max: number, window: SendWindow, hooks: OutboxHooks) {
    this.#max = max
    this.#window = window
    this.#hooks = hooks
  }

  /** Entries waiting, re-joins included. */
  get length (): number {
    return this.#rejoins.length + this.#queue.length
  }

  entry (msg: OutgoingEnvelope, droppable: boolean, rejoin = false): Entry {
    return { msg, wire: msg, droppable, rejoin, retries: 0, seq: this.#seq++ }
  }

  /** True when a frame could be written now without overtaking anything or overrunning the pace. */
  ready (): boolean {
    return this.length === 0 && this.#gateOpen && this.#holdUntil <= now() && this.#window.wait() === 0
  }

  /** Queue an entry (bounded), then send what may go. */
  push (entry: Entry): void {
    if (entry.rejoin) {
      this.#rejoins.push(entry)
    } else {
      this.#queue.push(entry)
      if (entry.droppable) this.#droppable++
      if (this.#droppable > this.#max) this.#dropOldest()
    }
    this.pump()
  }

  /** Put a refused entry back at its place in order, and hold every frame for `holdMs`. */
  retry (entry: Entry, holdMs: number): void {
    const lane = entry.rejoin ? this.#rejoins : this.#queue
    let i = lane.length
    while (i > 0 && lane[i - 1].seq > entry.seq) i--
    lane.splice(i, 0, entry)
    if (entry.droppable) this.#droppable++
    this.#holdUntil = Math.max(this.#holdUntil, now() + holdMs)
    this.#schedule(holdMs)
    if (this.#droppable > this.#max) this.#dropOldest()
  }

  /** Take an entry out before it was sent; false when it is not waiting here. */
  remove (entry: Entry): boolean {
    const lane = entry.rejoin ? this.#rejoins : this.#queue
    const i = lane.indexOf(entry)
    if (i < 0) return false
    lane.splice(i, 1)
    if (entry.droppable) this.#droppable--
    return true
  }

  /** Hold queued messages back until `openGate`; re-joins still go. */
  closeGate (): void {
    this.#gateOpen = false
  }

  openGate (): void {
    this.#gateOpen = true
    this.pump()
  }

  /** A frame written past the outbox (a ping, an auth) still counts against the pace. */
  note (): void {
    this.#window.record()
  }

  /** Write what the pace allows now, and come back when more may go. */
  readonly pump = (): void => {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    const { canWrite, write } = this.#hooks
    while (canWrite()) {
      const lane = this.#rejoins.length > 0 ? this.#rejoins : this.#gateOpen ? this.#queue : undefined
      if (lane === undefined || lane.length === 0) return
      const at = now()
      const wait = Math.max(this.#holdUntil - at, this.#window.wait(at))
      if (wait > 0) {
        this.#schedule(wait)
        return
      }
      const entry = lane.shift() as Entry
      if (entry.droppable) this.#droppable--
      this.#window.record(at)
      write(entry)
    }
  }

  /** The connection ended: stop sending; queued messages stay for the next one, re-joins are rebuilt then. */
  pause (): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = undefined
    this.#rejoins.length = 0
    this.#gateOpen = true
    this.#holdUntil = 0
  }

  /** Empty it for good; returns the app messages that were still waiting. */
  clear (): Entry[] {
    this.pause()
    const left = this.#queue.splice(0).filter((entry) => entry.droppable)
    this.#droppable = 0
    return left
  }

  #schedule (ms: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer)
    this.#timer = setTimeout(this.pump, ms)
  }

  #dropOldest (): void {
    const i = this.#queue.findIndex((entry) => entry.droppable)
    const [oldest] = this.#queue.splice(i, 1)
    this.#droppable--
    this.#hooks.drop(oldest, 'queue_full')
  }
}
