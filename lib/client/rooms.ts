import { RoomPositions } from './room-positions.js'
import { isEpoch, isObject, isOffset } from './frames.js'
import { RealtimeClientError } from './error.js'
import { RATE_LIMITED } from './wire.js'
import type { Sender } from './sender.js'
import type { Envelope, JoinAck, OutgoingEnvelope } from './types.js'

interface Waiter {
  resolve: (ack: JoinAck) => void
  reject: (err: RealtimeClientError) => void
}

export interface RoomEvents {
  emit: (type: 'resync' | 'kicked', data: unknown, msg?: Envelope) => void
  error: (err: RealtimeClientError) => void
}

/**
 * The rooms of one client: the list it re-joins after every reconnect, where
 * it is in each room's history (so a re-join asks `since` and a message it
 * already has is dropped), and the `join()` calls waiting for an answer.
 */
export class ClientRooms {
  readonly #list = new Set<string>()
  readonly #positions = new RoomPositions()
  /** `history` asked by `join(room, { history })`, sent with that room's next join */
  readonly #historyAsks = new Map<string, number>()
  readonly #waiters = new Map<string, Waiter[]>()
  /** rooms whose re-join on this connection is not answered yet; queued messages wait for them */
  #rejoining = new Set<string>()
  /** bumped at every open: answers from an older connection are stale */
  #generation = 0
  readonly #sender: Sender
  readonly #events: RoomEvents

  constructor (rooms: Iterable<string>, sender: Sender, events: RoomEvents) {
    for (const room of rooms) this.#list.add(room)
    this.#sender = sender
    this.#events = events
  }

  list (): string[] {
    return [...this.#list]
  }

  /** Join now when `open`, else at the next open; resolves with the ack's data. */
  async join (room: string, history: number | undefined, open: boolean): Promise<JoinAck> {
    this.#list.add(room)
    if (history !== undefined) this.#historyAsks.set(room, history)
    const joined = new Promise<JoinAck>((resolve, reject) => {
      const waiters = this.#waiters.get(room) ?? []
      waiters.push({ resolve, reject })
      this.#waiters.set(room, waiters)
    })
    // a re-join of this room under way answers this call too
    if (open && (history !== undefined || !this.#rejoining.has(room))) this.#sendJoin(room, false)
    return await joined
  }

  /** Stop re-joining `room`; a join still waiting rejects with `CLOSED`. */
  leave (room: string): void {
    this.#forget(room)
    this.#settle(room, undefined, new RealtimeClientError('CLOSED', `left room ${room} before the join completed`))
  }

  /** A connection opened: re-join every room, first in the queue; queued messages wait for the answers. */
  opened (): void {
    this.#generation++
    this.#rejoining = new Set(this.#list)
    this.#sender.opened(this.#rejoining.size > 0)
    for (const room of this.#list) this.#sendJoin(room, true)
  }

  /** The connection ended; `unsent` are the joins it never wrote (a `history` among them asks again next time). */
  lost (unsent: OutgoingEnvelope[]): void {
    this.#rejoining.clear()
    for (const { room, data } of unsent) {
      if (room !== undefined && isObject(data) && typeof data.history === 'number') this.#historyAsks.set(room, data.history)
    }
  }

  /** For good: every waiting join rejects with `CLOSED`. */
  stop (): void {
    for (const room of [...this.#waiters.keys()]) {
      this.#settle(room, undefined, new RealtimeClientError('CLOSED', 'the client closed before the join completed'))
    }
  }

  /** A room message with an offset: false when the client already has it (replayed, or sent twice). */
  accept (room: string, offset: number): boolean {
    return !this.#list.has(room) || this.#positions.accept(room, offset)
  }

  /** The server lost the room's history: adopt its new epoch and offset, and tell the app. */
  resync (room: string, epoch: string, offset: number, msg: Envelope): void {
    if (!this.#list.has(room)) return
    this.#positions.adopt(room, epoch, offset)
    this.#events.emit('resync', { room }, msg)
  }

  /** The server took the connection out of `room`: it is not re-joined. */
  kicked (room: string, code: string, msg: Envelope): void {
    this.#forget(room)
    this.#settle(room, undefined, new RealtimeClientError('KICKED', `the server took the connection out of room ${room} (${code})`))
    this.#events.emit('kicked', { room, code }, msg)
  }

  #sendJoin (room: string, rejoin: boolean): void {
    const history = this.#historyAsks.get(room)
    this.#historyAsks.delete(room)
    // asked history replays messages it may have had: they are delivered again
    if (history !== undefined) this.#positions.forget(room)
    const since = history === undefined ? this.#positions.since(room) : undefined
    const msg: OutgoingEnvelope = { type: 'join', room }
    if (history !== undefined) msg.data = { history }
    else if (since !== undefined) msg.data = { since }
    const generation = this.#generation
    const answered = (): void => {
      if (!rejoin || generation !== this.#generation || !this.#rejoining.delete(room)) return
      if (this.#rejoining.size === 0) this.#sender.rejoined()
    }
    // callbacks, not a promise: the ack's offset applies before the frames read right after it
    this.#sender.call(msg, { rejoin, join: true },
      (ack: unknown) => {
        answered()
        this.#joined(room, ack, since !== undefined)
      },
      (err: RealtimeClientError) => {
        answered()
        this.#refused(room, err)
      }
    )
  }

  #joined (room: string, ack: unknown, askedSince: boolean): void {
    if (this.#list.has(room) && isObject(ack) && (ack.offset !== undefined || ack.epoch !== undefined)) {
      if (isOffset(ack.offset) && isEpoch(ack.epoch)) {
        this.#positions.adopt(room, ack.epoch, ack.offset)
        if (askedSince && ack.recovered === false) this.#events.emit('resync', { room })
      } else {
        this.#events.error(new RealtimeClientError('BAD_FRAME', `ignored the offset and epoch of a malformed join ack for room ${room}`))
      }
    }
    this.#settle(room, ack as JoinAck)
  }

  #refused (room: string, err: RealtimeClientError): void {
    const waiting = this.#waiters.has(room)
    this.#settle(room, undefined, err)
    // no answer in time: re-joined on the next connection
    if (err.code === 'TIMEOUT' || err.code === 'CLOSED') return
    // refused for the rate after every retry: kept, and re-joined on the next connection; any other refusal is final
    if (err.code !== RATE_LIMITED) this.#forget(room)
    if (!waiting) this.#events.error(err)
  }

  #settle (room: string, ack: JoinAck | undefined, err?: RealtimeClientError): void {
    const waiters = this.#waiters.get(room)
    if (waiters === undefined) return
    this.#waiters.delete(room)
    for (const waiter of waiters) {
      if (err === undefined) waiter.resolve(ack as JoinAck)
      else waiter.reject(err)
    }
  }

  #forget (room: string): void {
    this.#list.delete(room)
    this.#positions.forget(room)
    this.#historyAsks.delete(room)
  }
}
