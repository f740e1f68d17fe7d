import type { WebSocket } from 'ws'
import { kConnection, kPending, kTurnBytes } from '../symbols.js'
import { canWriteFramesDirectly, countHeldBytes, socketOf } from './internals.js'

/**
 * Build an unmasked, final WebSocket text frame around `payload` in one buffer:
 * a broadcast builds it once and writes the same buffer to every member.
 */
export function textFrame (payload: string): Buffer {
  const length = Buffer.byteLength(payload)
  const header = length < 126 ? 2 : length < 65_536 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x81 // FIN + text opcode
  if (header === 2) {
    frame[1] = length
  } else if (header === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 2 ** 32), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  frame.write(payload, header, 'utf8')
  return frame
}

/** Whether two sockets hold the very same frames, in the same order. */
function sameFrames (a: Buffer[], b: Buffer[]): boolean {
  if (a.length !== b.length) return false
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false
  return true
}

function byteLength (frames: Buffer[]): number {
  let bytes = 0
  for (let i = 0; i < frames.length; i++) bytes += frames[i].length
  return bytes
}

/** A socket the writer can write to: the ws socket plus two fields the writer owns. */
export interface Writable {
  readonly ws: WebSocket
  /** frames held for this turn's write, in order: one frame, or several */
  [kPending]: Buffer | Buffer[] | undefined
  /** bytes handed over this turn (held, or given to `ws.send`); they are not a backlog yet */
  [kTurnBytes]: number
}

/**
 * Holds the pre-built frames bound for each socket until the end of the
 * event-loop turn, then writes them with one `socket.write` a socket: the frame
 * itself when it is the only one (no copy), else the turn's frames joined
 * (once for consecutive sockets that hold the same frames, as the members of a
 * room do after a burst of broadcasts, which then share the joined buffer).
 * Held bytes count in `ws.bufferedAmount` (in ws's own sender counter) until
 * they are written, so the slow-consumer check and users see them as ws's own.
 * Frames are written in order with everything else the connection sends:
 * `release()` writes a socket's held frames before ws writes a frame of its own
 * for it (a close, or a frame ws must build), and frames still held when the
 * socket stops being open are dropped, never written after a close frame.
 */
export class FrameWriter {
  #turn: Writable[] = []
  #immediate: NodeJS.Immediate | undefined
  /** during a flush: the last frames joined, and the buffer they made */
  #joinedFrames: Buffer[] | undefined
  #joined: Buffer | undefined
  readonly #flush = (): void => {
    this.#immediate = undefined
    const turn = this.#turn
    this.#turn = []
    for (let i = 0; i < turn.length; i++) {
      const target = turn[i]
      target[kTurnBytes] = 0
      try {
        this.#release(target, true)
      } catch {
        // a stream that throws on write (not net.Socket, which reports errors as
        // events) must not keep the other sockets of the turn from being written
      }
    }
    this.#joinedFrames = undefined
    this.#joined = undefined
  }

  /**
   * Queue `frame` (built by `textFrame(payload)`) for one socket. Returns the
   * socket's backlog: what earlier turns left unsent (`ws.bufferedAmount` less
   * what this turn handed over); -1 if the socket was not open. A backlog only
   * grows when the peer stops reading.
   */
  write (target: Writable, frame: Buffer, payload: string): number {
    const ws = target.ws
    if (ws.readyState !== 1) return -1
    if (target[kPending] === undefined && target[kTurnBytes] === 0) {
      // first frame for this socket this turn (a frame is never empty)
      this.#turn.push(target)
      if (this.#immediate === undefined) this.#immediate = setImmediate(this.#flush)
    }
    if (!canWriteFramesDirectly(ws)) {
      // ws frames (and compresses) this one itself: what this turn holds goes first
      this.release(target)
      ws.send(payload)
    } else {
      countHeldBytes(ws, frame.length)
      const pending = target[kPending]
      if (pending === undefined) target[kPending] = frame
      else if (Array.isArray(pending)) pending.push(frame)
      else target[kPending] = [pending, frame]
    }
    target[kTurnBytes] += frame.length
    return Math.max(0, ws.bufferedAmount - target[kTurnBytes])
  }

  /**
   * Write the socket's held frames now; call before ws writes anything of its
   * own for this socket that must come after them (a close frame). Frames for a
   * socket that is no longer open are dropped.
   */
  release (target: Writable): void {
    this.#release(target, false)
  }

  #release (target: Writable, flushing: boolean): void {
    const pending = target[kPending]
    if (pending === undefined) return
    target[kPending] = undefined
    const bytes = Array.isArray(pending) ? byteLength(pending) : pending.length
    countHeldBytes(target.ws, -bytes)
    const socket = socketOf(target.ws)
    if (target.ws.readyState !== 1 || socket === null || !socket.writable) return
    if (!Array.isArray(pending)) {
      socket.write(pending)
    } else if (!flushing) {
      socket.write(Buffer.concat(pending, bytes))
    } else {
      if (this.#joinedFrames === undefined || !sameFrames(this.#joinedFrames, pending)) {
        this.#joinedFrames = pending
        this.#joined = Buffer.concat(pending, bytes)
      }
      socket.write(this.#joined as Buffer)
    }
  }

  /** Write everything still held now; used on shutdown. */
  flush (): void {
    if (this.#immediate !== undefined) clearImmediate(this.#immediate)
    this.#flush()
  }
}

/**
 * The writer of every connection in the process: frames of one event-loop turn
 * are written together whichever app they belong to.
 */
export const frameWriter = new FrameWriter()

/** Write what the writer holds for the connection of `ws` now: ws is about to close it. */
export function releaseHeldFrames (ws: WebSocket): void {
  const target = (ws as unknown as Record<symbol, Writable | undefined>)[kConnection]
  if (target !== undefined) frameWriter.release(target)
}
