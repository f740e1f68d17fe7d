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

/** A socket the writer can write to: the ws socket plus a flag the writer owns. */
export interface Writable {
  readonly ws: WebSocket
  corked: boolean
}

/**
 * Writes pre-built frames straight to each socket, corked until the end of the
 * event-loop turn so that every frame bound for one socket goes out in one write.
 * Bytes written this way count in `ws.bufferedAmount` like ws's own.
 */
export class FrameWriter {
  #corked: Writable[] = []
  #immediate: NodeJS.Immediate | undefined
  readonly #flush = (): void => {
    this.#immediate = undefined
    const corked = this.#corked
    this.#corked = []
    for (let i = 0; i < corked.length; i++) {
      const target = corked[i]
      target.corked = false
      // corked once by write() this turn, so uncorked exactly once here
      const socket = (target.ws as unknown as WsInternals)._socket
      if (socket !== null) socket.uncork()
    }
  }

  /**
   * Write `frame` (built by `textFrame(payload)`) to one socket; returns the
   * socket's unsent byte count after the write, or -1 if it was not open.
   */
  write (target: Writable, frame: Buffer, payload: string): number {
    const ws = target.ws
    if (ws.readyState !== 1) return -1
    const internals = ws as unknown as WsInternals
    const socket = internals._socket
    // ws queues frames while it compresses; write through it then to keep order.
    if (socket === null || internals._sender._state !== 0 || internals._sender._queue.length > 0 ||
      internals._extensions['permessage-deflate'] !== undefined) {
      ws.send(payload)
      return ws.bufferedAmount
    }
    if (!target.corked) {
      target.corked = true
      socket.cork()
      this.#corked.push(target)
      if (this.#immediate === undefined) this.#immediate = setImmediate(this.#flush)
    }
    socket.write(frame)
    return socket.writableLength
  }

  /** Send everything still corked now; used on shutdown. */
  flush (): void {
    if (this.#immediate !== undefined) clearImmediate(this.#immediate)
    this.#flush()
  }
}
