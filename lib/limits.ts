import { CloseCode } from './protocol.js'
import { kDropTimer, kRateCount, kRateStart } from './symbols.js'

/** Connection slots: handshakes in progress and open connections, in all and per user. */
export class ConnectionLimits {
  #active = 0
  readonly #perUser = new Map<string, number>()
  readonly #max: number
  readonly #maxPerUser: number

  constructor (max: number, maxPerUser: number) {
    this.#max = max
    this.#maxPerUser = maxPerUser
  }

  get active (): number {
    return this.#active
  }

  /** Takes a slot for a new handshake; false when the process is full. */
  reserve (): boolean {
    if (this.#active >= this.#max) return false
    this.#active++
    return true
  }

  /** Takes a per-user slot; false when `sub` is at its limit. Without a limit, nothing is counted. */
  reserveUser (sub: string): boolean {
    if (this.#maxPerUser >= Number.MAX_SAFE_INTEGER) return true
    const count = this.#perUser.get(sub) ?? 0
    if (count >= this.#maxPerUser) return false
    this.#perUser.set(sub, count + 1)
    return true
  }

  /** Frees a slot, and the per-user slot of `sub` when given. */
  release (sub: string | null = null): void {
    if (this.#active > 0) this.#active--
    if (sub !== null) this.releaseUser(sub)
  }

  releaseUser (sub: string): void {
    if (this.#maxPerUser >= Number.MAX_SAFE_INTEGER) return
    const count = (this.#perUser.get(sub) ?? 1) - 1
    if (count <= 0) this.#perUser.delete(sub)
    else this.#perUser.set(sub, count)
  }
}

export const RATE_OK = 0
export const RATE_LIMITED = 1
export const RATE_CLOSE = 2
export type RateVerdict = typeof RATE_OK | typeof RATE_LIMITED | typeof RATE_CLOSE

/** A connection's fixed rate window: its start (ms) and the messages counted in it. */
export interface RateWindow {
  [kRateStart]: number
  [kRateCount]: number
}

/**
 * Count one message in a fixed window (kept on the connection itself: no object
 * per connection). Up to `max` messages pass; past it each one is answered
 * RATE_LIMITED; past twice `max` in one window the connection is closed (4429).
 */
export function checkRate (window: RateWindow, now: number, max: number, windowMs: number): RateVerdict {
  if (now - window[kRateStart] >= windowMs) {
    window[kRateStart] = now
    window[kRateCount] = 0
  }
  const count = ++window[kRateCount]
  if (count <= max) return RATE_OK
  return count > 2 * max ? RATE_CLOSE : RATE_LIMITED
}

/** What the slow-consumer rule and the drop timer need of a connection. */
export interface Consumer {
  readonly id: string
  readonly log: { warn: (obj: object, msg: string) => void }
  close: (code: number, reason: string) => void
  terminate: () => void
  [kDropTimer]: NodeJS.Timeout | undefined
}

/** Whether `buffered` unsent bytes make a slow consumer. */
export function isSlowConsumer (buffered: number, maxBufferedBytes: number): boolean {
  return buffered > maxBufferedBytes
}

/**
 * The peer stopped reading: stop writing to it, send 1013 behind what it
 * already holds, and drop the socket if it has not closed within `graceMs`
 * (it may never read that far).
 */
export function closeSlowConsumer (conn: Consumer, buffered: number, graceMs: number): void {
  conn.log.warn({ connId: conn.id, buffered }, 'fastify-realtime: closing slow consumer')
  conn.close(CloseCode.TRY_AGAIN_LATER, 'slow consumer')
  dropIfNotClosed(conn, graceMs)
}

/** A connection being closed holds its slot until its peer answers: drop it if that takes longer than `graceMs`. */
export function dropIfNotClosed (conn: Consumer, graceMs: number): void {
  cancelDrop(conn)
  const timer = setTimeout(() => { conn.terminate() }, graceMs)
  timer.unref()
  conn[kDropTimer] = timer
}

/** Clear the drop timer once the socket closed. */
export function cancelDrop (conn: Consumer): void {
  if (conn[kDropTimer] !== undefined) clearTimeout(conn[kDropTimer])
  conn[kDropTimer] = undefined
}
