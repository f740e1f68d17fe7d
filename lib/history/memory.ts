import { newEpoch, withOffset, type HistoryEntry, type HistoryQuery, type HistoryRead, type HistorySettings, type HistorySink, type HistoryStore } from './store.js'

/**
 * Make V8 turn a concatenated string (a tree of its pieces, about 350 bytes more
 * for a 150-byte envelope) into one flat string, in place: measuring its UTF-8
 * length reads it whole. Frames are built from it later at no extra cost.
 */
function flatten (text: string): void {
  Buffer.byteLength(text)
}

/** Longest pause between two sweeps of expired messages. */
const MAX_SWEEP_MS = 30_000

/**
 * One room's history: a ring of the last `size` envelopes and the time each was
 * kept. Slots are filled as messages come, so a quiet room costs little.
 */
class RoomLog {
  readonly epoch: string
  /** latest offset given */
  offset = 0
  /** when the last message was kept (or the log made) */
  touched: number
  readonly #payloads: string[] = []
  readonly #excepts: Array<readonly string[] | undefined> = []
  readonly #times: number[] = []
  /** index of the oldest kept message once the ring is full */
  #head = 0
  #count = 0
  readonly #size: number

  constructor (size: number, now: number) {
    this.#size = size
    this.epoch = newEpoch(now)
    this.touched = now
  }

  get count (): number {
    return this.#count
  }

  /** Keep `payload` as message `offset` (the next one). */
  keep (payload: string, except: readonly string[] | undefined, now: number): void {
    this.touched = now
    if (this.#count < this.#size) {
      const slot = (this.#head + this.#count) % this.#size
      if (slot === this.#payloads.length) {
        this.#payloads.push(payload)
        this.#excepts.push(except)
        this.#times.push(now)
      } else {
        this.#payloads[slot] = payload
        this.#excepts[slot] = except
        this.#times[slot] = now
      }
      this.#count++
      return
    }
    // full: the oldest slot takes the newest message
    this.#payloads[this.#head] = payload
    this.#excepts[this.#head] = except
    this.#times[this.#head] = now
    this.#head = (this.#head + 1) % this.#size
  }

  /** Drop the messages kept before `cutoff` (oldest first; the ring keeps its order). */
  expire (cutoff: number): void {
    while (this.#count > 0 && this.#times[this.#head] < cutoff) {
      this.#payloads[this.#head] = ''
      this.#excepts[this.#head] = undefined
      this.#head = (this.#head + 1) % this.#size
      this.#count--
    }
    if (this.#count === 0) {
      // a log that emptied gives its slots back
      this.#payloads.length = 0
      this.#excepts.length = 0
      this.#times.length = 0
      this.#head = 0
    }
  }

  /** Kept messages with offsets from `from` on, at most `limit`, none kept before `cutoff`. */
  entries (from: number, limit: number, cutoff: number): HistoryEntry[] {
    const out: HistoryEntry[] = []
    const oldest = this.offset - this.#count + 1
    let start = Math.max(from, oldest)
    for (; start <= this.offset && out.length < limit; start++) {
      const slot = (this.#head + (start - oldest)) % this.#size
      if (this.#times[slot] < cutoff) continue
      const except = this.#excepts[slot]
      out.push(except === undefined ? { offset: start, payload: this.#payloads[slot] } : { offset: start, payload: this.#payloads[slot], except })
    }
    return out
  }
}

/**
 * The in-memory history store: per room, the last `size` messages, each for at
 * most `ttl` ms. A sweep (an unref'd timer) drops expired messages, and frees a
 * room that has no message, no local member and no broadcast for `ttl` (its
 * counter goes too: the room's next message starts a new epoch).
 */
export class MemoryHistoryStore implements HistoryStore {
  readonly available = true
  readonly #settings: HistorySettings
  readonly #logs = new Map<string, RoomLog>()
  readonly #now: () => number
  #sink: HistorySink | undefined
  #sweep: NodeJS.Timeout | undefined

  /** `now`: the clock (tests pass their own). */
  constructor (settings: HistorySettings, now: () => number = Date.now) {
    this.#settings = settings
    this.#now = now
  }

  attach (sink: HistorySink): void {
    this.#sink = sink
  }

  append (room: string, body: string, except?: readonly string[]): boolean {
    const now = this.#now()
    const log = this.#log(room, now)
    const offset = ++log.offset
    const payload = withOffset(body, offset)
    // a concatenated string is a tree of pieces until something reads it whole; keep it flat
    flatten(payload)
    log.keep(payload, except, now)
    this.#sink?.sequenced(room, log.epoch, offset, payload, except)
    return true
  }

  read (room: string, query: HistoryQuery): HistoryRead {
    const now = this.#now()
    const log = this.#log(room, now)
    const cutoff = now - this.#settings.ttl
    let entries: HistoryEntry[]
    if ('after' in query) entries = log.entries(query.after + 1, query.limit, cutoff)
    else entries = query.last === 0 ? [] : log.entries(log.offset - Math.min(query.last, this.#settings.size) + 1, query.last, cutoff)
    return { epoch: log.epoch, offset: log.offset, entries }
  }

  /** Rooms with a log (for tests and the memory figures in the docs). */
  get rooms (): number {
    return this.#logs.size
  }

  /** Whether the sweep timer runs (it stops when no room is left). */
  get sweeping (): boolean {
    return this.#sweep !== undefined
  }

  close (): void {
    clearInterval(this.#sweep)
    this.#sweep = undefined
    this.#logs.clear()
    this.#sink = undefined
  }

  #log (room: string, now: number): RoomLog {
    let log = this.#logs.get(room)
    if (log === undefined) {
      log = new RoomLog(this.#settings.size, now)
      this.#logs.set(room, log)
      this.#startSweep()
    }
    return log
  }

  #startSweep (): void {
    if (this.#sweep !== undefined) return
    const every = Math.min(MAX_SWEEP_MS, Math.max(500, Math.floor(this.#settings.ttl / 2)))
    this.#sweep = setInterval(() => { this.sweep(this.#now()) }, every)
    this.#sweep.unref()
  }

  /** Drop expired messages; free idle rooms nobody here is in. */
  sweep (now: number): void {
    const cutoff = now - this.#settings.ttl
    for (const [room, log] of this.#logs) {
      log.expire(cutoff)
      if (log.count === 0 && log.touched <= cutoff && this.#sink?.watching(room) !== true) this.#logs.delete(room)
    }
    if (this.#logs.size === 0) {
      clearInterval(this.#sweep)
      this.#sweep = undefined
    }
  }
}
