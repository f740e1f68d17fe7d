import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { Socket } from 'node:net'
import { finished, type Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import { CloseCode, ErrorCode, errorMessages } from './errors.js'
import { parseEnvelope, serialize, serializeError } from './envelope.js'
import { textFrame } from './writer.js'
import { RATE_CLOSE, RATE_OK, checkRate, type RateWindow } from './limits.js'
import type { CompiledRoute } from './route.js'
import type { RealtimeServer } from './server.js'
import type { BroadcastOptions, RealtimeUser } from './types.js'
import type { Writable } from './writer.js'
import { dispatchMessage } from './dispatch.js'
import type { HandshakeSlot } from './handshake.js'

/** Longest single wait of the token-expiry timer. */
const EXPIRY_STEP_MS = 60_000
/** A close frame's reason holds at most 123 bytes of UTF-8. */
const MAX_REASON_BYTES = 123

/** The close codes an endpoint may send (RFC 6455 section 7.4, as ws checks them). */
export function isSendableCloseCode (code: unknown): code is number {
  return Number.isInteger(code) && (((code as number) >= 1000 && (code as number) <= 1014 &&
    code !== 1004 && code !== 1005 && code !== 1006) || ((code as number) >= 3000 && (code as number) <= 4999))
}

/** Cut `reason` to what a close frame holds, on a character boundary. */
export function closeReason (reason: string): string {
  if (Buffer.byteLength(reason) <= MAX_REASON_BYTES) return reason
  let bytes = 0
  let end = 0
  for (const char of reason) {
    bytes += Buffer.byteLength(char)
    if (bytes > MAX_REASON_BYTES) break
    end += char.length
  }
  return reason.slice(0, end)
}

/** Where a socket keeps its connection, for the listeners every connection shares. */
const kConnection = Symbol('fastify-realtime.connection')

function connectionOf (ws: WebSocket): Connection {
  return (ws as unknown as Record<symbol, Connection>)[kConnection]
}

/** Write what the writer holds for the socket's connection now: ws is about to close it. */
export function releaseHeldFrames (ws: WebSocket): void {
  connectionOf(ws)?.releaseHeld()
}

/** What the handshake verified, handed to the connection. */
export interface Handshake {
  user: RealtimeUser | null
  expiresAt: number | undefined
  slot: HandshakeSlot
}

/**
 * One WebSocket connection: its user, rooms, liveness, rate window and token
 * expiry. Incoming messages are processed one at a time, in order.
 */
export class Connection implements Writable, RateWindow {
  readonly id: string
  /** The verified JWT payload; `null` for anonymous clients when `auth.required` is false. */
  user: RealtimeUser
  readonly request: FastifyRequest
  readonly ws: WebSocket
  readonly route: CompiledRoute
  /** @internal owned by the FrameWriter */
  pending: Buffer | Buffer[] | undefined = undefined
  /** @internal owned by the FrameWriter */
  turnBytes = 0
  /** @internal a message (or, on a non-TCP stream, a pong) arrived since the last heartbeat sweep (see heard()) */
  isAlive = true
  /** @internal the socket's bytesRead at the last heartbeat sweep */
  readMark = 0
  /** @internal the rate window's start (ms) */
  rateStart = 0
  /** @internal messages in the rate window */
  rateCount = 0
  readonly #server: RealtimeServer
  /** the slots this connection holds (see HandshakeSlot.adopt), released on close */
  readonly #slotUser: string | null | undefined
  #expiry: NodeJS.Timeout | undefined
  #dropTimer: NodeJS.Timeout | undefined
  #closing = false
  #busy = false
  /** messages waiting behind a slow async handler; created when first needed */
  #backlog: Buffer[] | undefined

  constructor (server: RealtimeServer, route: CompiledRoute, ws: WebSocket, request: FastifyRequest, handshake: Handshake) {
    this.id = server.nextConnectionId()
    this.#server = server
    this.route = route
    this.ws = ws
    this.request = request
    this.user = handshake.user as RealtimeUser
    this.#slotUser = handshake.slot.adopt()
    this.setExpiry(handshake.expiresAt)
    // the listeners are shared by every connection and find theirs on the socket:
    // no closures per connection
    ;(ws as unknown as Record<symbol, Connection>)[kConnection] = this
    ws.on('message', Connection.#onMessage)
    ws.on('close', Connection.#onClose) // ws emits it once; once() would add a wrapper per connection
    const socket = (ws as unknown as { _socket: Duplex | null })._socket
    if (socket !== null && !(socket instanceof Socket)) {
      // heard() reads a TCP socket's bytesRead; other streams (app.injectWS) count pongs
      ws.on('pong', Connection.#onPong)
      // such a stream emits no 'close' once both sides ended, so ws would wait 30 s
      // to report the close: destroy it when it is done
      finished(socket, () => { socket.destroy() })
    }
  }

  /** The connection's JWT `sub`, or null. */
  get sub (): string | null {
    const sub = (this.user as RealtimeUser | null)?.sub
    return typeof sub === 'string' ? sub : null
  }

  /** The rooms this connection is in. */
  get rooms (): ReadonlySet<string> {
    return this.#server.registry.roomsOf(this)
  }

  get log (): FastifyBaseLogger {
    return this.request.log
  }

  /**
   * @internal The heartbeat's liveness check: did the peer send anything since
   * the last call? A pong is bytes on the socket, so a TCP socket's `bytesRead`
   * answers without a 'pong' listener per connection (about 100 bytes of heap
   * each); any message counts too, and so do pongs on a stream without
   * bytesRead (app.injectWS), which gets a 'pong' listener instead.
   */
  heard (): boolean {
    const socket = (this.ws as unknown as { _socket: Duplex | null })._socket
    const read = socket instanceof Socket ? socket.bytesRead : -1
    const heard = this.isAlive || read !== this.readMark
    this.isAlive = false
    this.readMark = read
    return heard
  }

  /** Whether the connection is open and not being closed. */
  get open (): boolean {
    return !this.#closing && this.ws.readyState === 1
  }

  /**
   * Send one message to this connection.
   * @example conn.send('welcome', { motd: 'hi' })
   */
  send (type: string, data?: unknown, room?: string): boolean {
    return this.sendPayload(serialize(type, data, room))
  }

  /**
   * Join a room from server code (no `canJoin` check, no room limit).
   * @example await conn.join('user:' + conn.user.sub)
   */
  async join (room: string): Promise<void> {
    await this.#server.joinRoom(this, room)
  }

  /** Leave a room from server code. */
  async leave (room: string): Promise<void> {
    await this.#server.leaveRoom(this, room)
  }

  /**
   * Broadcast to a room (this connection included unless excepted).
   * @example conn.broadcast('lobby', 'chat.message', { text }, { except: conn.id })
   */
  broadcast (room: string, type: string, data?: unknown, opts?: BroadcastOptions): void {
    this.#server.broadcast(room, type, data, opts)
  }

  /**
   * Close the connection with a code and reason (4403 to kick).
   * @example conn.close(4403, 'banned')
   */
  close (code: number = CloseCode.NORMAL, reason = ''): void {
    // checked before any state changes: a throw must not leave a half-closed connection
    if (!isSendableCloseCode(code)) throw new TypeError(`fastify-realtime: ${String(code)} is not a close code a server may send`)
    if (this.#closing) return
    this.#closing = true
    this.#server.leaveAll(this)
    // the socket writes what this turn holds for it first (RealtimeSocket)
    this.ws.close(code, closeReason(String(reason)))
  }

  /** Drop a connection at once, without a closing handshake. */
  terminate (): void {
    this.#closing = true
    this.ws.terminate()
  }

  /** @internal write the frames the writer holds for this connection now. */
  releaseHeld (): void {
    this.#server.writer.release(this)
  }

  /** @internal write a serialised envelope to this connection only. */
  sendPayload (payload: string): boolean {
    return this.writeFrame(textFrame(payload), payload)
  }

  /** @internal write a pre-built frame; closes the connection if it became a slow consumer. */
  writeFrame (frame: Buffer, payload: string): boolean {
    const server = this.#server
    if (this.#closing) {
      server.counters.drops++
      return false
    }
    const buffered = server.writer.write(this, frame, payload)
    if (buffered < 0) {
      server.counters.drops++
      return false
    }
    server.counters.messagesOut++
    if (buffered > server.options.maxBufferedBytes) this.#closeSlowConsumer(buffered)
    return true
  }

  /**
   * The peer stopped reading: stop writing to it, send 1013 behind what it
   * already holds, and drop the socket if it has not closed within
   * `closeGracePeriod` (it may never read that far).
   */
  #closeSlowConsumer (buffered: number): void {
    this.log.warn({ connId: this.id, buffered }, 'fastify-realtime: closing slow consumer')
    this.close(CloseCode.TRY_AGAIN_LATER, 'slow consumer')
    this.#dropTimer = setTimeout(() => this.ws.terminate(), this.#server.options.closeGracePeriod)
    this.#dropTimer.unref()
  }

  /** @internal send an `error` envelope. */
  sendError (code: string, id?: string | number, message?: string, details?: unknown[]): void {
    this.#server.counters.errors++
    this.sendPayload(serializeError(code, message ?? errorMessages[code as ErrorCode] ?? code, id, details))
  }

  /** @internal (re)arm the timer that closes the connection with 4401 when the token expires. */
  setExpiry (expiresAt: number | undefined): void {
    if (this.#expiry !== undefined) clearTimeout(this.#expiry)
    this.#expiry = undefined
    // a refresh that settles after the socket closed must not arm a timer that holds it
    if (expiresAt === undefined || this.#closing) return
    const delay = expiresAt - Date.now()
    if (delay <= 0) {
      this.close(CloseCode.TOKEN_INVALID, 'token expired')
      return
    }
    // Node keeps a timer list per distinct duration until it elapses, even when
    // cleared: wait in whole seconds, at most a minute at a time (60 long durations
    // in all, far under setTimeout's 2^31-1 ms), and only the last sub-second exactly.
    const wait = delay < 1000 ? delay : Math.min(Math.floor(delay / 1000) * 1000, EXPIRY_STEP_MS)
    this.#expiry = setTimeout(() => this.setExpiry(expiresAt), wait)
    this.#expiry.unref()
  }

  /**
   * The socket's error listener (ws reports protocol errors: oversize, bad UTF-8,
   * bad frames) when the plugin registered @fastify/websocket itself; ws closes
   * with the error's code. Log quietly, as the registration's errorHandler does.
   */
  static onSocketError (this: WebSocket, err: Error): void {
    connectionOf(this).log.debug({ err }, 'fastify-realtime: websocket error')
    if (this.readyState < 2) this.terminate()
  }

  static #onPong (this: WebSocket): void {
    connectionOf(this).isAlive = true
  }

  static #onMessage (this: WebSocket, data: Buffer, isBinary: boolean): void {
    connectionOf(this).#receive(data, isBinary)
  }

  #receive (data: Buffer, isBinary: boolean): void {
    if (this.#closing) return
    this.isAlive = true
    const server = this.#server
    server.counters.messagesIn++
    if (isBinary) {
      this.close(CloseCode.UNSUPPORTED_DATA, 'only JSON text frames are accepted')
      return
    }
    const { max, windowMs } = server.options.rateLimit
    const verdict = checkRate(this, Date.now(), max, windowMs)
    if (verdict !== RATE_OK) {
      server.counters.drops++
      if (verdict === RATE_CLOSE) this.close(CloseCode.RATE_LIMITED, 'rate limit exceeded')
      else this.#refuse(data)
      return
    }
    if (this.#busy) {
      // a slow async handler holds the line; bound what waits behind it
      const backlog = this.#backlog ??= []
      if (backlog.length >= max) {
        server.counters.drops++
        this.#refuse(data)
      } else {
        backlog.push(data)
      }
      return
    }
    this.#process(data)
  }

  /** Answer RATE_LIMITED with the message's id, so a client's request() fails at once. */
  #refuse (data: Buffer): void {
    const parsed = parseEnvelope(data.toString())
    this.sendError(ErrorCode.RATE_LIMITED, parsed.ok ? parsed.envelope.id : parsed.id)
  }

  #process (data: Buffer): void {
    const pending = dispatchMessage(this, this.#server, data.toString())
    if (pending === undefined) return
    this.#busy = true
    const resume = (): void => { this.#resume() }
    pending.then(resume, resume)
  }

  #resume (): void {
    this.#busy = false
    const backlog = this.#backlog
    if (backlog === undefined) return
    while (!this.#busy && backlog.length > 0 && !this.#closing) {
      this.#process(backlog.shift() as Buffer)
    }
  }

  static #onClose (this: WebSocket, code: number, reason: Buffer): void {
    connectionOf(this).#closed(code, reason)
  }

  #closed (code: number, reason: Buffer): void {
    this.#closing = true
    // drops what the turn still holds, and its bytes from ws.bufferedAmount, now
    this.#server.writer.release(this)
    if (this.#expiry !== undefined) clearTimeout(this.#expiry)
    if (this.#dropTimer !== undefined) clearTimeout(this.#dropTimer)
    this.#backlog = undefined
    this.#server.removeConnection(this)
    if (this.#slotUser !== undefined) this.#server.limits.release(this.#slotUser)
    const onClose = this.route.onClose
    if (onClose !== undefined) {
      try {
        onClose(this, code, reason.toString())
      } catch (err) {
        this.log.error({ err, connId: this.id }, 'onClose hook failed')
      }
    }
  }
}
