import type { Adapter } from '../adapters/adapter.js'
import { errors } from '../errors.js'
import { textFrame } from '../ws/writer.js'
import { resyncItem, RoomFeed, type FeedHost, type FeedMember } from './room-feed.js'
import { Stitch, type FeedItem, type Position, type StitchWriter } from './stitch.js'
import { MAX_HISTORY_SIZE, type HistoryEntry, type HistoryQuery, type HistoryRead, type HistorySettings, type HistorySink, type HistoryStore } from './store.js'

export type { FeedHost, FeedMember } from './room-feed.js'

/** A join's `data`, validated: what to replay before the ack. */
export interface JoinRequest {
  since?: { offset: number, epoch: string }
  history?: number
}

/** What a join ack of a room with history carries. */
export interface HistoryAck {
  offset: number
  epoch: string
  recovered?: boolean
}

/**
 * A join whose replay was written: send the ack, then `release()` so live
 * messages flow (what came meanwhile is written then, after the ack).
 */
export interface JoinHandle {
  readonly ack: HistoryAck
  release (): void
}

/** What `app.realtime.history()` resolves to. */
export interface HistoryPage {
  epoch: string
  offset: number
  messages: Array<{ offset: number, type: string, data?: unknown }>
}

/**
 * The room feeds of an app with the `history` option: its adapter's store, or
 * a registration error when the adapter keeps no history.
 */
export function createRoomFeeds<C extends FeedMember> (settings: HistorySettings, adapter: Adapter, host: FeedHost<C>, timeoutMs: number): RoomFeeds<C> {
  if (typeof adapter.historyStore !== 'function') {
    throw new errors.FST_REALTIME_INVALID_OPTION('history', 'needs an adapter that keeps history (the default in-memory adapter, or redisAdapter from fastify-realtime/redis)')
  }
  return new RoomFeeds(host, adapter.historyStore(settings), settings, timeoutMs)
}

/** The epoch a join ack carries when the store could not be read and this instance knows none. */
export const UNKNOWN_EPOCH = 'unavailable'
/** Pause before reading the store again after a failed catch-up. */
const RETRY_MS = 1000

function isPromise<T> (value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function'
}

const noop = (): void => {}

/**
 * Local delivery of every room with history that has a member here (one
 * RoomFeed each), joins stitched to it, and catch-up reads. The store
 * gives each message its offset; the feed hands messages to local members in
 * offset order, exactly once: a duplicate is dropped, a gap is filled from the
 * store (or, when the store no longer has it, members get `resync`), and a
 * message of a newer epoch is preceded by `resync`. Joins read the store and
 * are stitched to live delivery at one offset (Stitch).
 */
export class RoomFeeds<C extends FeedMember> implements HistorySink {
  readonly settings: HistorySettings
  readonly store: HistoryStore
  readonly #host: FeedHost<C>
  readonly #timeout: number
  readonly #feeds = new Map<string, RoomFeed<C>>()
  readonly #writer: StitchWriter<C>
  /** a message could not be kept and that was logged; cleared when the store is back */
  #outage = false

  constructor (host: FeedHost<C>, store: HistoryStore, settings: HistorySettings, timeoutMs: number) {
    this.#host = host
    this.store = store
    this.settings = settings
    this.#timeout = timeoutMs
    this.#writer = {
      write: (conn, frame, payload) => { host.writeFrame(conn, frame, payload) },
      resync: (room, epoch, offset) => resyncItem(room, epoch, offset)
    }
    store.attach(this)
  }

  /**
   * A broadcast to a room with history (`body`: the envelope without its closing
   * brace): the store gives it its offset and has it delivered. When the store
   * cannot be reached, local members get it now, without an offset, and it is not kept.
   */
  broadcast (room: string, body: string, except: readonly string[] | undefined): void {
    if (!this.store.append(room, body, except)) this.unsequenced(room, body + '}', except)
  }

  /** Whether `room` keeps history (a throwing `rooms` predicate is logged and counts as no). */
  keeps (room: string): boolean {
    try {
      return this.settings.rooms(room) === true
    } catch (err) {
      this.#host.log.error({ err, room }, 'fastify-realtime: history.rooms() threw; the room keeps no history')
      return false
    }
  }

  watching (room: string): boolean {
    return this.#feeds.has(room)
  }

  unsequenced (room: string, payload: string, except?: readonly string[]): void {
    if (!this.#outage) {
      this.#outage = true
      this.#host.log.warn({ room }, 'fastify-realtime: the history store cannot be reached; broadcasts to rooms with history reach local members without an offset and are not kept until it is back')
    }
    this.#host.deliverUnkept(room, payload, except)
  }

  sequenced (room: string, epoch: string, offset: number, payload: string, except?: readonly string[]): void {
    const feed = this.#feeds.get(room)
    if (feed === undefined) return
    if (feed.queue === undefined && epoch === feed.epoch && offset === feed.delivered + 1) {
      feed.delivered = offset
      feed.emit(epoch, offset, payload, except, false)
      return
    }
    const item: FeedItem = { epoch, offset, payload, frame: undefined, except, resync: false }
    if (feed.queue !== undefined) {
      feed.queue.push(item)
      // the store has them all: past this many, let the next read fetch them instead
      if (feed.queue.length > this.settings.size * 2 + 1000) feed.queue.length = 0
      this.#catchUp(feed, room)
      return
    }
    if (!feed.accept(item)) {
      feed.queue = [item]
      this.#catchUp(feed, room)
    }
  }

  reconnected (): void {
    this.#outage = false
    for (const [room, feed] of this.#feeds) this.#catchUp(feed, room)
  }

  /**
   * Stitch `conn`, a member of `room` now, to the room's sequence: read the
   * store (after `waitFor`, the adapter's join), write the replay, and return
   * the ack's data with `release()`. Live messages are held until then.
   */
  join (conn: C, room: string, request: JoinRequest, waitFor?: Promise<void>): JoinHandle | Promise<JoinHandle> {
    let feed = this.#feeds.get(room)
    if (feed === undefined) {
      feed = new RoomFeed<C>(room, this.#host, this.#writer)
      this.#feeds.set(room, feed)
    }
    const stitch = new Stitch(conn, room)
    const previous = feed.stitches?.get(conn)
    if (previous !== undefined) {
      // a join of the same connection still in progress: this one takes over what it held
      previous.superseded = true
      if (previous.buffering) stitch.held = previous.held
    }
    ;(feed.stitches ??= new Map()).set(conn, stitch)
    const start = feed.position()
    feed.joins++
    const query = joinQuery(request, this.settings.size)
    const finish = (read: HistoryRead | undefined): JoinHandle => {
      ;(feed as RoomFeed<C>).joins--
      return this.#complete(feed as RoomFeed<C>, stitch, request, read, start)
    }
    if (waitFor === undefined) {
      const read = this.#read(room, query)
      return isPromise(read) ? read.then(finish) : finish(read)
    }
    return waitFor.then(() => {
      const read = this.#read(room, query)
      return isPromise(read) ? read.then(finish) : finish(read)
    })
  }

  /** `conn` left `room`; `last` when no local member is left (the feed goes). */
  left (conn: C, room: string, last: boolean): void {
    const feed = this.#feeds.get(room)
    if (feed === undefined) return
    const stitch = feed.stitches?.get(conn)
    if (stitch !== undefined) {
      stitch.superseded = true
      feed.stitches?.delete(conn)
    }
    if (last) {
      clearTimeout(feed.retry)
      this.#feeds.delete(room)
    }
  }

  /**
   * `app.realtime.history()` of a room that keeps history: the first `limit`
   * messages after `since`, or the last `limit` kept, parsed. A bad query throws
   * (a coded TypeError); it rejects when the store cannot be reached.
   */
  page (room: string, opts: { since?: number, limit?: number }): Promise<HistoryPage> {
    if (opts === null || typeof opts !== 'object') throw new errors.FST_REALTIME_INVALID_HISTORY_QUERY('options', 'must be an object { since?, limit? }')
    const { since, limit = this.settings.size } = opts
    if (since !== undefined && (!Number.isSafeInteger(since) || since < 0)) {
      throw new errors.FST_REALTIME_INVALID_HISTORY_QUERY('since', `must be an integer >= 0 (an offset), got ${JSON.stringify(since)}`)
    }
    if (!Number.isInteger(limit) || limit < 1 || limit > MAX_HISTORY_SIZE) {
      throw new errors.FST_REALTIME_INVALID_HISTORY_QUERY('limit', `must be an integer from 1 to ${MAX_HISTORY_SIZE}, got ${JSON.stringify(limit)}`)
    }
    if (!this.store.available) return Promise.reject(new errors.FST_REALTIME_ADAPTER_UNAVAILABLE('the history store', 'it cannot be reached now'))
    return this.#page(room, since === undefined ? { last: limit } : { after: since, limit })
  }

  async #page (room: string, query: HistoryQuery): Promise<HistoryPage> {
    const read = await this.store.read(room, query)
    const messages = read.entries.map((entry) => {
      const envelope = JSON.parse(entry.payload) as { type: string, data?: unknown }
      return 'data' in envelope ? { offset: entry.offset, type: envelope.type, data: envelope.data } : { offset: entry.offset, type: envelope.type }
    })
    return { epoch: read.epoch, offset: read.offset, messages }
  }

  close (): void {
    for (const feed of this.#feeds.values()) clearTimeout(feed.retry)
    this.#feeds.clear()
  }

  #complete (feed: RoomFeed<C>, stitch: Stitch<C>, request: JoinRequest, read: HistoryRead | undefined, start: Position | undefined): JoinHandle {
    const current = this.#feeds.get(stitch.room) === feed && feed.stitches?.get(stitch.conn) === stitch
    const since = request.since
    let ack: HistoryAck
    let replay: HistoryEntry[] | undefined
    if (read !== undefined) {
      if (current && feed.epoch === undefined) {
        feed.sync(read)
        if (!feed.drain() || feed.again) this.#catchUp(feed, stitch.room)
      }
      ack = { offset: read.offset, epoch: read.epoch }
      if (since !== undefined) {
        ack.recovered = isRecovered(read, since.offset, since.epoch)
        if (ack.recovered) replay = read.entries
      } else if (request.history !== undefined) {
        replay = read.entries
      }
      stitch.position = { epoch: read.epoch, offset: read.offset }
    } else {
      // the store cannot be read: answer with where this instance stands, if it knows
      const at = start ?? feed.position()
      ack = at === undefined ? { offset: 0, epoch: UNKNOWN_EPOCH } : { offset: at.offset, epoch: at.epoch }
      if (since !== undefined) ack.recovered = at !== undefined && since.epoch === at.epoch && since.offset === at.offset
      stitch.position = at
      // no join read left to give the feed its epoch: read for it now
      if (feed.epoch === undefined && feed.joins === 0 && (feed.queue !== undefined || feed.again)) this.#catchUp(feed, stitch.room)
    }
    if (!current || stitch.superseded) return { ack, release: noop }
    if (replay !== undefined) {
      for (const entry of replay) this.#host.writeFrame(stitch.conn, textFrame(entry.payload), entry.payload)
    }
    return {
      ack,
      release: () => {
        if (feed.stitches?.get(stitch.conn) !== stitch) return
        stitch.release(this.#writer)
        feed.settle(stitch)
      }
    }
  }

  /** Read what local members missed (or the room's epoch, for a feed that has none) and deliver it. */
  #catchUp (feed: RoomFeed<C>, room: string): void {
    if (this.#feeds.get(room) !== feed) return
    // a read in flight (or a join read giving the feed its epoch) may predate what was missed: read again after it
    if (feed.reading || (feed.epoch === undefined && feed.joins > 0)) {
      feed.again = true
      return
    }
    if (!this.store.available) return // reconnected() comes back here
    feed.reading = true
    feed.again = false
    const query: HistoryQuery = feed.epoch === undefined ? { last: 0 } : { after: feed.delivered, limit: this.settings.size }
    const done = (read: HistoryRead | undefined): void => {
      feed.reading = false
      if (this.#feeds.get(room) !== feed) return
      if (read === undefined) {
        this.#retryLater(feed, room)
        return
      }
      feed.apply(read)
      if (!feed.drain() || feed.again) this.#catchUp(feed, room)
    }
    const read = this.#read(room, query)
    if (isPromise(read)) read.then(done, noop)
    else done(read)
  }

  #retryLater (feed: RoomFeed<C>, room: string): void {
    if (feed.retry !== undefined || !this.store.available) return
    feed.retry = setTimeout(() => {
      feed.retry = undefined
      this.#catchUp(feed, room)
    }, RETRY_MS)
    feed.retry.unref()
  }

  /** Read the store; undefined when it cannot be reached, fails, or takes longer than the timeout (logged). */
  #read (room: string, query: HistoryQuery): HistoryRead | undefined | Promise<HistoryRead | undefined> {
    if (!this.store.available) return undefined
    let result
    try {
      result = this.store.read(room, query)
    } catch (err) {
      this.#host.log.warn({ err, room }, 'fastify-realtime: reading room history failed')
      return undefined
    }
    if (!isPromise(result)) return result
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => {
        this.#host.log.warn({ room }, `fastify-realtime: the history store did not answer within ${this.#timeout} ms`)
        resolve(undefined)
      }, this.#timeout)
      timer.unref()
    })
    const answered = result.then((read) => read, (err: unknown) => {
      this.#host.log.warn({ err, room }, 'fastify-realtime: reading room history failed')
      return undefined
    })
    return Promise.race([answered, timeout]).finally(() => { clearTimeout(timer) })
  }
}

function joinQuery (request: JoinRequest, size: number): HistoryQuery {
  if (request.since !== undefined) return { after: request.since.offset, limit: size }
  if (request.history !== undefined) return { last: Math.min(request.history, size) }
  return { last: 0 }
}

/** Whether `read` holds every message after `offset` of `epoch`, up to the latest. */
function isRecovered (read: HistoryRead, offset: number, epoch: string): boolean {
  if (epoch !== read.epoch || offset > read.offset) return false
  const missed = read.offset - offset
  const entries = read.entries
  return entries.length === missed && (missed === 0 || (entries[0].offset === offset + 1 && entries[missed - 1].offset === read.offset))
}
