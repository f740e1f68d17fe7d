import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'

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

/** The ws internals the fast path reads; anything else falls back to `ws.send`. */
interface WsInternals {
  _socket: Duplex | null
  _sender: { _queue: unknown[], _state: number }
  _extensions: Record<string, unknown>
}

/** A socket the writer can write to: the ws socket plus two fields the writer owns. */
export interface Writable {
  readonly ws: WebSocket
  /** its socket is corked until this turn's flush */
  corked: boolean
  /** bytes handed to the socket this turn; they are not a backlog yet */
  turnBytes: number
}

/**
 * Writes pre-built frames straight to each socket, corked until the end of the
 * event-loop turn so that every frame bound for one socket goes out in one write.
 * Bytes written this way count in `ws.bufferedAmount` like ws's own.
 */
export class FrameWriter {
  #turn: Writable[] = []
  #immediate: NodeJS.Immediate | undefined
  readonly #flush = (): void => {
    this.#immediate = undefined
    const turn = this.#turn
    this.#turn = []
    for (let i = 0; i < turn.length; i++) {
      const target = turn[i]
      target.turnBytes = 0
      if (!target.corked) continue
      target.corked = false
      // corked once by write() this turn, so uncorked exactly once here
      const socket = (target.ws as unknown as WsInternals)._socket
      if (socket !== null) socket.uncork()
    }
  }

  /**
   * Write `frame` (built by `textFrame(payload)`) to one socket. Returns the
   * socket's backlog: its unsent bytes (`ws.bufferedAmount`) less what was
   * handed to it this turn, which corking holds back on purpose; -1 if the
   * socket was not open. A backlog only grows when the peer stops reading.
   */
  write (target: Writable, frame: Buffer, payload: string): number {
    const ws = target.ws
    if (ws.readyState !== 1) return -1
    const internals = ws as unknown as WsInternals
    const socket = internals._socket
    if (target.turnBytes === 0) {
      // first frame for this socket this turn (a frame is never empty)
      this.#turn.push(target)
      if (this.#immediate === undefined) this.#immediate = setImmediate(this.#flush)
    }
    target.turnBytes += frame.length
    // ws queues frames while it compresses; write through it then to keep order.
    if (socket === null || internals._sender._state !== 0 || internals._sender._queue.length > 0 ||
      internals._extensions['permessage-deflate'] !== undefined) {
      ws.send(payload)
    } else {
      if (!target.corked) {
        target.corked = true
        socket.cork()
      }
      socket.write(frame)
    }
    return Math.max(0, ws.bufferedAmount - target.turnBytes)
  }

  /** Send everything still corked now; used on shutdown. */
  flush (): void {
    if (this.#immediate !== undefined) clearImmediate(this.#immediate)
    this.#flush()
  }
}
