import { textFrame } from '../ws/writer.js'
import { isNewerEpoch } from './store.js'

/** One envelope of a room with history, as the feed delivers it: a message, or a `resync`. */
export interface FeedItem {
  epoch: string
  /** the message's offset; for a `resync`, the offset it resumes after */
  offset: number
  payload: string
  /** built on first use, then shared */
  frame: Buffer | undefined
  except: readonly string[] | undefined
  resync: boolean
}

/** Where a connection stands in a room's sequence: it has every message up to `offset` of `epoch`. */
export interface Position {
  epoch: string
  offset: number
}

/** What a stitch writes with. */
export interface StitchWriter<C> {
  write (conn: C, frame: Buffer, payload: string): void
  /** a `resync` envelope for `room`, to send before a message of a newer epoch that came without one */
  resync (room: string, epoch: string, offset: number): FeedItem
}

export function frameOf (item: FeedItem): Buffer {
  item.frame ??= textFrame(item.payload)
  return item.frame
}

/**
 * Stitches replay and live delivery of one room for one connection at one
 * offset. While its join reads the store, the live envelopes of the room are
 * held (`buffering`). Once the replay is written, held and later envelopes pass
 * only when they come after `position` (`filtering`), until the room's feed
 * has itself delivered past that point and the connection is an ordinary member.
 */
export class Stitch<C> {
  readonly conn: C
  readonly room: string
  buffering = true
  /** set when the join read the store; undefined when it could not */
  position: Position | undefined
  held: FeedItem[] = []
  /** a newer join of the same connection to the same room took over */
  superseded = false

  constructor (conn: C, room: string) {
    this.conn = conn
    this.room = room
  }

  /** An envelope the room delivered: held while buffering, else written if it comes after `position`. */
  take (item: FeedItem, writer: StitchWriter<C>): void {
    if (this.buffering) this.held.push(item)
    else this.pass(item, writer)
  }

  /** Stop buffering: write what was held and comes after `position`. */
  release (writer: StitchWriter<C>): void {
    this.buffering = false
    const held = this.held
    this.held = []
    for (const item of held) this.pass(item, writer)
  }

  pass (item: FeedItem, writer: StitchWriter<C>): void {
    const at = this.position
    if (at === undefined) {
      writer.write(this.conn, frameOf(item), item.payload)
      return
    }
    if (item.epoch === at.epoch) {
      if (item.offset <= at.offset) return // already sent (replayed, or a resync it does not need)
      at.offset = item.offset
      writer.write(this.conn, frameOf(item), item.payload)
      return
    }
    if (!isNewerEpoch(item.epoch, at.epoch)) return // of an epoch the connection has moved past
    if (!item.resync) {
      // the room moved to a new epoch: say so before its first message (the feed always does)
      const resync = writer.resync(this.room, item.epoch, item.offset - 1)
      writer.write(this.conn, frameOf(resync), resync.payload)
    }
    this.position = { epoch: item.epoch, offset: item.offset }
    writer.write(this.conn, frameOf(item), item.payload)
  }
}
