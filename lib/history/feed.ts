import type { FastifyBaseLogger } from 'fastify'
import { serialize } from '../envelope.js'
import { textFrame } from '../ws/writer.js'
import { Stitch, type FeedItem, type Position, type StitchWriter } from './stitch.js'
import { isNewerEpoch, type HistoryEntry, type HistoryQuery, type HistoryRead, type HistorySettings, type HistorySink, type HistoryStore } from './store.js'

/** What the feed needs of a connection. */
export interface FeedMember {
  readonly id: string
}

/** What the feed needs of the plugin: local members, a writer, a logger, and where an unkept message goes. */
export interface FeedHost<C extends FeedMember> {
  membersOf (room: string): ReadonlySet<C> | undefined
  writeFrame (conn: C, frame: Buffer, payload: string): boolean
  /** deliver locally, without an offset, a message the store could not keep */
  deliverUnkept (room: string, payload: string, except: readonly string[] | undefined): void
  readonly log: FastifyBaseLogger
}

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

/** The epoch a join ack carries when the store could not be read and this instance knows none. */
export const UNKNOWN_EPOCH = 'unavailable'
/** Pause before reading the store again after a failed catch-up. */
const RETRY_MS = 1000

/** One room's local delivery: where this instance stands in its sequence, and what waits. */
class RoomFeed<C> {
  /** undefined until the store was read once for this room */
  epoch: string | undefined = undefined
  /** the last offset delivered to local members */
  delivered = 0
  /** messages that came while a read was needed (a gap, or no epoch yet) */
  queue: FeedItem[] | undefined = undefined
  reading = false
  /** a catch-up was asked for while a read was in flight: read again once it is done */
  again = false
  /** join reads in flight; one of them gives an unsynced feed its epoch */
  joins = 0
  /** connections whose join is being stitched */
  stitches: Map<C, Stitch<C>> | undefined = undefined
  retry: NodeJS.Timeout | undefined = undefined
  /** where each stitch started, when the feed knew */
  start (): Position | undefined {
    return this.epoch === undefined ? undefined : { epoch: this.epoch, offset: this.delivered }
  }
}

function isPromise<T> (value: T | Promise<T>): value is Promise<T> {
  return typeof (value as Promise<T> | null)?.then === 'function'
}

const noop = (): void => {}

/**
 * Local delivery of every room with history that has a member here. The store
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

  constructor (host: FeedHost<C>, store: HistoryStore, settings: HistorySettings, timeoutMs: number) {
    this.#host = host
    this.store = store
    this.settings = settings
    this.#timeout = timeoutMs
    this.#writer = {
      write: (conn, frame, payload) => { host.writeFrame(conn, frame, payload) },
      resync: (room, epoch, offset) => resyncItem(room, epoch, offset)
    }
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
    this.#host.deliverUnkept(room, payload, except)
  }

  sequenced (room: string, epoch: string, offset: number, payload: string, except?: readonly string[]): void {
    const feed = this.#feeds.get(room)
    if (feed === undefined) return
    if (feed.queue === undefined && epoch === feed.epoch && offset === feed.delivered + 1) {
      feed.delivered = offset
      this.#emit(feed, room, epoch, offset, payload, except, false)
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
    if (!this.#accept(feed, room, item)) {
      feed.queue = [item]
      this.#catchUp(feed, room)
    }
  }

  reconnected (): void {
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
      feed = new RoomFeed<C>()
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
    const start = feed.start()
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
   * `app.realtime.history()`: the first `limit` messages after `since`, or the
   * last `limit` kept, parsed. Rejects when the store cannot be reached.
   */
  async page (room: string, since: number | undefined, limit: number): Promise<{ epoch: string, offset: number, messages: Array<{ offset: number, type: string, data?: unknown }> }> {
    const query: HistoryQuery = since === undefined ? { last: limit } : { after: since, limit }
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
        this.#sync(feed, stitch.room, read)
        if (feed.again) this.#catchUp(feed, stitch.room)
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
      const at = start ?? feed.start()
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
        this.#settle(feed, stitch)
      }
    }
  }

  /** A stitch whose position the feed has reached makes its connection an ordinary member. */
  #settle (feed: RoomFeed<C>, stitch: Stitch<C>): void {
    const at = stitch.position
    if (at !== undefined && !(feed.epoch === at.epoch && feed.delivered >= at.offset)) return
    feed.stitches?.delete(stitch.conn)
    if (feed.stitches?.size === 0) feed.stitches = undefined
  }

  /** Hand one envelope to every local member: written at once, or to a stitch. */
  #emit (feed: RoomFeed<C>, room: string, epoch: string, offset: number, payload: string, except: readonly string[] | undefined, resync: boolean): void {
    const members = this.#host.membersOf(room)
    if (members === undefined) return
    const frame = textFrame(payload)
    const stitches = feed.stitches
    const skip = except !== undefined && except.length > 0
    let item: FeedItem | undefined
    for (const conn of members) {
      if (skip && (except as readonly string[]).includes(conn.id)) continue
      if (stitches !== undefined) {
        const stitch = stitches.get(conn)
        if (stitch !== undefined) {
          item ??= { epoch, offset, payload, frame, except, resync }
          stitch.take(item, this.#writer)
          if (!stitch.buffering) this.#settle(feed, stitch)
          continue
        }
      }
      this.#host.writeFrame(conn, frame, payload)
    }
  }

  #emitResync (feed: RoomFeed<C>, room: string, epoch: string, offset: number): void {
    const item = resyncItem(room, epoch, offset)
    this.#emit(feed, room, epoch, offset, item.payload, undefined, true)
  }

  /** Deliver `item` if it is next; drop it if old. False when a read must come first (a gap, or no epoch yet). */
  #accept (feed: RoomFeed<C>, room: string, item: FeedItem): boolean {
    if (feed.epoch === undefined) return false
    if (item.epoch !== feed.epoch) {
      if (!isNewerEpoch(item.epoch, feed.epoch)) return true
      // the room's history was lost and began again: members reload first
      feed.epoch = item.epoch
      feed.delivered = 0
      this.#emitResync(feed, room, item.epoch, 0)
    }
    if (item.offset <= feed.delivered) return true
    if (item.offset > feed.delivered + 1) return false
    feed.delivered = item.offset
    this.#emit(feed, room, item.epoch, item.offset, item.payload, item.except, false)
    return true
  }

  /** Deliver what waited, in order, until a gap needs the store again. */
  #drain (feed: RoomFeed<C>, room: string): void {
    const queue = feed.queue
    if (queue === undefined) return
    let i = 0
    while (i < queue.length && this.#accept(feed, room, queue[i])) i++
    if (i === queue.length) {
      feed.queue = undefined
      return
    }
    queue.splice(0, i)
    this.#catchUp(feed, room)
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
      this.#apply(feed, room, read)
      this.#drain(feed, room)
      if (feed.again) this.#catchUp(feed, room)
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

  /** A feed without an epoch takes the store's; its members (joined while it could not be read) reload. */
  #sync (feed: RoomFeed<C>, room: string, read: HistoryRead): void {
    feed.epoch = read.epoch
    feed.delivered = read.offset
    this.#emitResync(feed, room, read.epoch, read.offset)
    this.#drain(feed, room)
  }

  /** Deliver a catch-up read: every missed message when the store still has them all, else `resync`. */
  #apply (feed: RoomFeed<C>, room: string, read: HistoryRead): void {
    if (feed.epoch === undefined) {
      this.#sync(feed, room, read)
      return
    }
    if (read.epoch !== feed.epoch) {
      if (!isNewerEpoch(read.epoch, feed.epoch)) return
      feed.epoch = read.epoch
      feed.delivered = read.offset
      this.#emitResync(feed, room, read.epoch, read.offset)
      return
    }
    if (read.offset <= feed.delivered) return
    const entries = read.entries
    let i = 0
    while (i < entries.length && entries[i].offset <= feed.delivered) i++
    const complete = entries.length - i === read.offset - feed.delivered &&
      entries[i]?.offset === feed.delivered + 1 && entries[entries.length - 1].offset === read.offset
    if (!complete) {
      // more was missed than the store still keeps
      feed.delivered = read.offset
      this.#emitResync(feed, room, read.epoch, read.offset)
      return
    }
    for (; i < entries.length; i++) {
      const entry = entries[i]
      feed.delivered = entry.offset
      this.#emit(feed, room, read.epoch, entry.offset, entry.payload, entry.except, false)
    }
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

function resyncItem (room: string, epoch: string, offset: number): FeedItem {
  return { epoch, offset, payload: serialize('resync', { epoch, offset }, room), frame: undefined, except: undefined, resync: true }
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
