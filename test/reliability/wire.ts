// Raw TCP WebSocket client for the reliability suite: hand-built (masked or not)
// frames and a frame reader, so protocol-level abuse reaches the server as bytes.
import { randomBytes } from 'node:crypto'
import net from 'node:net'

export const OP_CONT = 0x0
export const OP_TEXT = 0x1
export const OP_BINARY = 0x2
export const OP_CLOSE = 0x8
export const OP_PING = 0x9
export const OP_PONG = 0xa

export interface FrameSpec {
  opcode: number
  payload?: Buffer | string
  fin?: boolean
  /** RSV1..3 bits, 0 to 7 */
  rsv?: number
  /** clients must mask; false builds an (illegal) unmasked client frame */
  mask?: boolean
  /** announce this length instead of the payload's (for oversize headers) */
  length?: bigint
}

/** One client-to-server frame, as bytes. */
export function frame (spec: FrameSpec): Buffer {
  const payload = typeof spec.payload === 'string' ? Buffer.from(spec.payload) : (spec.payload ?? Buffer.alloc(0))
  const length = spec.length ?? BigInt(payload.length)
  const masked = spec.mask !== false
  const b0 = ((spec.fin === false ? 0 : 1) << 7) | ((spec.rsv ?? 0) << 4) | (spec.opcode & 0x0f)
  let header: Buffer
  if (length < 126n) {
    header = Buffer.from([b0, Number(length)])
  } else if (length < 65_536n) {
    header = Buffer.alloc(4)
    header[0] = b0
    header[1] = 126
    header.writeUInt16BE(Number(length), 2)
  } else {
    header = Buffer.alloc(10)
    header[0] = b0
    header[1] = 127
    header.writeBigUInt64BE(length, 2)
  }
  if (!masked) return Buffer.concat([header, payload])
  header[1] |= 0x80
  const key = randomBytes(4)
  const body = Buffer.alloc(payload.length)
  for (let i = 0; i < payload.length; i++) body[i] = payload[i] ^ key[i & 3]
  return Buffer.concat([header, key, body])
}

/** A close frame with `code` (and optional reason). */
export function closeFrame (code: number, reason = ''): Buffer {
  const body = Buffer.alloc(2 + Buffer.byteLength(reason))
  body.writeUInt16BE(code, 0)
  body.write(reason, 2)
  return frame({ opcode: OP_CLOSE, payload: body })
}

export interface ServerFrame {
  opcode: number
  fin: boolean
  payload: Buffer
}

export interface HttpAnswer {
  status: number
  headers: Record<string, string>
  body: string
}

/**
 * A raw TCP connection speaking (or abusing) the WebSocket protocol. After the
 * 101 it parses the server's frames: `texts` holds text messages in order,
 * `closeCode` the code of the server's close frame.
 */
export class RawSocket {
  readonly socket: net.Socket
  readonly texts: string[] = []
  readonly frames: ServerFrame[] = []
  answer: HttpAnswer | undefined
  closeCode: number | undefined
  closeReason = ''
  /** resolves when the TCP connection is gone */
  readonly ended: Promise<void>
  #buffer = Buffer.alloc(0)
  #upgraded = false
  #waiters: Array<() => void> = []

  constructor (socket: net.Socket) {
    this.socket = socket
    socket.on('data', (chunk) => {
      this.#buffer = Buffer.concat([this.#buffer, chunk])
      this.#parse()
      this.#wake()
    })
    socket.on('error', () => {})
    this.ended = new Promise((resolve) => socket.once('close', () => {
      resolve()
      this.#wake()
    }))
  }

  get destroyed (): boolean {
    return this.socket.destroyed
  }

  write (bytes: Buffer | string): void {
    if (!this.socket.destroyed) this.socket.write(bytes)
  }

  send (spec: FrameSpec): void {
    this.write(frame(spec))
  }

  sendText (text: string | Buffer): void {
    this.write(frame({ opcode: OP_TEXT, payload: text }))
  }

  /** Wait until `ready()` holds, the socket is gone, or `ms` passed; returns `ready()`. */
  async until (ready: () => boolean, ms = 2000): Promise<boolean> {
    const deadline = Date.now() + ms
    while (!ready()) {
      if (this.socket.destroyed || Date.now() >= deadline) return ready()
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(1, deadline - Date.now()))
        this.#waiters.push(() => {
          clearTimeout(timer)
          resolve()
        })
      })
    }
    return true
  }

  /** Wait for the server's close frame (or the end of TCP); returns its code. */
  async closed (ms = 2000): Promise<number | undefined> {
    await this.until(() => this.closeCode !== undefined, ms)
    return this.closeCode
  }

  destroy (): void {
    this.socket.destroy()
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }

  #parse (): void {
    if (!this.#upgraded) {
      const end = this.#buffer.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = this.#buffer.subarray(0, end).toString('latin1').split('\r\n')
      const status = Number(head[0].split(' ')[1])
      const headers: Record<string, string> = {}
      for (const line of head.slice(1)) {
        const colon = line.indexOf(':')
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim()
      }
      this.#buffer = this.#buffer.subarray(end + 4)
      this.answer = { status, headers, body: '' }
      if (status !== 101) {
        this.answer.body = this.#buffer.toString()
        this.#buffer = Buffer.alloc(0)
        // the body of a refusal may arrive in later chunks
        this.socket.removeAllListeners('data')
        this.socket.on('data', (chunk) => {
          (this.answer as HttpAnswer).body += chunk.toString()
          this.#wake()
        })
        return
      }
      this.#upgraded = true
    }
    for (;;) {
      const buf = this.#buffer
      if (buf.length < 2) return
      const fin = (buf[0] & 0x80) !== 0
      const opcode = buf[0] & 0x0f
      let length = buf[1] & 0x7f
      let offset = 2
      if (length === 126) {
        if (buf.length < 4) return
        length = buf.readUInt16BE(2)
        offset = 4
      } else if (length === 127) {
        if (buf.length < 10) return
        length = Number(buf.readBigUInt64BE(2))
        offset = 10
      }
      if (buf.length < offset + length) return
      const payload = buf.subarray(offset, offset + length)
      this.#buffer = buf.subarray(offset + length)
      this.frames.push({ opcode, fin, payload })
      if (opcode === OP_TEXT) this.texts.push(payload.toString())
      if (opcode === OP_CLOSE) {
        this.closeCode = payload.length >= 2 ? payload.readUInt16BE(0) : 1005
        this.closeReason = payload.subarray(2).toString()
      }
    }
  }
}

export interface UpgradeOptions {
  headers?: Record<string, string>
  /** raw request head to send instead of a well-formed one */
  head?: string
}

/** Open a TCP connection to `port` and send a WebSocket upgrade request for `path`. */
export async function rawUpgrade (port: number, path: string, options: UpgradeOptions = {}): Promise<RawSocket> {
  const socket = net.connect({ port, host: '127.0.0.1' })
  const raw = new RawSocket(socket)
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve)
    socket.once('error', reject)
  })
  if (options.head !== undefined) {
    socket.write(options.head)
    return raw
  }
  const headers: Record<string, string> = {
    host: `127.0.0.1:${port}`,
    connection: 'Upgrade',
    upgrade: 'websocket',
    'sec-websocket-version': '13',
    'sec-websocket-key': randomBytes(16).toString('base64'),
    ...options.headers
  }
  let head = `GET ${path} HTTP/1.1\r\n`
  for (const [name, value] of Object.entries(headers)) head += `${name}: ${value}\r\n`
  socket.write(head + '\r\n')
  return raw
}

/** Upgrade and wait for the answer; the RawSocket's `answer` holds the status. */
export async function rawConnect (port: number, path: string, options: UpgradeOptions = {}): Promise<RawSocket> {
  const raw = await rawUpgrade(port, path, options)
  await raw.until(() => raw.answer !== undefined, 5000)
  return raw
}
