import type { FastifyBaseLogger } from 'fastify'
import { serialize } from '../envelope.js'
import { textFrame } from '../ws/writer.js'
import type { Stitch, FeedItem, Position, StitchWriter } from './stitch.js'
import { isNewerEpoch, type HistoryRead } from './store.js'

/** What the feed needs of a connection. */
export interface FeedMember {
  readonly id: string
}

/** What the feed needs of the plugin: local members, a writer, a logger, and where an unkept message goes. */
export interface FeedHost<C extends FeedMember> {
  membersOf (room: string): ReadonlySet<C> | undefined
  writeFrame (conn: C, frame: Buffer, payload: string): boolean
  /** deliver locally, without an offset, a message the store could not keep (and count it) */
  deliverUnkept (room: string, payload: string, except: readonly string[] | undefined): void
  readonly log: FastifyBaseLogger
}

/** A `resync` envelope of `room`: the connection reloads, then has every message after `offset` of `epoch`. */
export function resyncItem (room: string, epoch: string, offset: number): FeedItem {
  return { epoch, offset, payload: serialize('resync', { epoch, offset }, room), frame: undefined, except: undefined, resync: true }
}

/**
 * One room's local delivery: where this instance stands in the room's sequence
 * (`epoch`, `delivered`), what waits for a read of the store (`queue`), and the
 * connections whose join is being stitched. Messages go to local members in
 * offset order, once: `accept` delivers the next one, drops an old one, and
 * says when the store must be read first (a gap, or no epoch yet).
 */
export class RoomFeed<C extends FeedMember> {
  readonly room: string
  /** undefined until the store was read once for this room */
  epoch: string | undefined = undefined
  /** the last offset delivered to local members */
  delivered = 0
  /** messages that came while a read was needed */
  queue: FeedItem[] | undefined = undefined
  reading = false
  /** a catch-up was asked for while a read was in flight: read again once it is done */
  again = false
  /** join reads in flight; one of them gives a feed without an epoch its epoch */
  joins = 0
  /** connections whose join is being stitched */
  stitches: Map<C, Stitch<C>> | undefined = undefined
  retry: NodeJS.Timeout | undefined = undefined
  readonly #host: FeedHost<C>
  readonly #writer: StitchWriter<C>

  constructor (room: string, host: FeedHost<C>, writer: StitchWriter<C>) {
    this.room = room
    this.#host = host
    this.#writer = writer
  }

  /** Where the feed stands, when it knows. */
  position (): Position | undefined {
    return this.epoch === undefined ? undefined : { epoch: this.epoch, offset: this.delivered }
  }

  /** Hand one envelope to every local member: written at once, or to its stitch. */
  emit (epoch: string, offset: number, payload: string, except: readonly string[] | undefined, resync: boolean): void {
    const members = this.#host.membersOf(this.room)
    if (members === undefined) return
    const frame = textFrame(payload)
    const stitches = this.stitches
    const skip = except !== undefined && except.length > 0
    let item: FeedItem | undefined
    for (const conn of members) {
      if (skip && (except as readonly string[]).includes(conn.id)) continue
      if (stitches !== undefined) {
        const stitch = stitches.get(conn)
        if (stitch !== undefined) {
          item ??= { epoch, offset, payload, frame, except, resync }
          stitch.take(item, this.#writer)
          if (!stitch.buffering) this.settle(stitch)
          continue
        }
      }
      this.#host.writeFrame(conn, frame, payload)
    }
  }

  emitResync (epoch: string, offset: number): void {
    this.emit(epoch, offset, resyncItem(this.room, epoch, offset).payload, undefined, true)
  }

  /** A stitch whose position the feed has reached makes its connection an ordinary member. */
  settle (stitch: Stitch<C>): void {
    const at = stitch.position
    if (at !== undefined && !(this.epoch === at.epoch && this.delivered >= at.offset)) return
    this.stitches?.delete(stitch.conn)
    if (this.stitches?.size === 0) this.stitches = undefined
  }

  /** Deliver `item` if it is next; drop it if old. False when a read must come first. */
  accept (item: FeedItem): boolean {
    if (this.epoch === undefined) return false
    if (item.epoch !== this.epoch) {
      if (!isNewerEpoch(item.epoch, this.epoch)) return true
      // the room's history was lost and began again: members reload first
      this.epoch = item.epoch
      this.delivered = 0
      this.emitResync(item.epoch, 0)
    }
    if (item.offset <= this.delivered) return true
    if (item.offset > this.delivered + 1) return false
    this.delivered = item.offset
    this.emit(item.epoch, item.offset, item.payload, item.except, false)
    return true
  }

  /** Deliver what waited, in order; false when a gap needs the store again. */
  drain (): boolean {
    const queue = this.queue
    if (queue === undefined) return true
    let i = 0
    while (i < queue.length && this.accept(queue[i])) i++
    if (i === queue.length) {
      this.queue = undefined
      return true
    }
    queue.splice(0, i)
    return false
  }

  /** A feed without an epoch takes the store's; its members (joined while it could not be read) reload. */
  sync (read: HistoryRead): void {
    this.epoch = read.epoch
    this.delivered = read.offset
    this.emitResync(read.epoch, read.offset)
  }

  /** Deliver a catch-up read: every missed message when the store still has them all, else `resync`. */
  apply (read: HistoryRead): void {
    if (this.epoch === undefined) {
      this.sync(read)
      return
    }
    if (read.epoch !== this.epoch) {
      if (!isNewerEpoch(read.epoch, this.epoch)) return
      this.epoch = read.epoch
      this.delivered = read.offset
      this.emitResync(read.epoch, read.offset)
      return
    }
    if (read.offset <= this.delivered) return
    const entries = read.entries
    let i = 0
    while (i < entries.length && entries[i].offset <= this.delivered) i++
    const complete = entries.length - i === read.offset - this.delivered &&
      entries[i]?.offset === this.delivered + 1 && entries[entries.length - 1].offset === read.offset
    if (!complete) {
      // more was missed than the store still keeps
      this.delivered = read.offset
      this.emitResync(read.epoch, read.offset)
      return
    }
    for (; i < entries.length; i++) {
      const entry = entries[i]
      this.delivered = entry.offset
      this.emit(read.epoch, entry.offset, entry.payload, entry.except, false)
    }
  }
}
