import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import type { CompiledRoute } from './context.js'
import { assertRoom, serialize } from './envelope.js'
import { errors } from './errors.js'
import type { JoinHandle, JoinRequest } from './history/feed.js'
import { CloseCode, closeReason, isSendableCloseCode } from './protocol.js'
import type { DropReason, RealtimeMetrics } from './metrics.js'
import {
  kAlive, kBacklog, kBusy, kCloseSent, kConnection, kDropTimer, kExpiry, kHost, kMessagesIn, kMessagesOut, kOpenedAt, kPending, kRooms,
  kRateCount, kRateStart, kReadMark, kTurnBytes
} from './symbols.js'
import type { Member } from './protocol.js'
import type { BroadcastOptions, Connection, ConnectionRequest, RealtimeUser } from './types.js'
import { textFrame } from './ws/writer.js'

/**
 * What a connection asks of the hub that holds it (the hub implements it; this
 * file never imports the hub, so imports run one way).
 */
export interface ConnectionHost {
  roomsOf (conn: RealtimeConnection): ReadonlySet<string>
  /** in a room with history, a handle: send the ack, then release it */
  joinRoom (conn: RealtimeConnection, room: string, request?: JoinRequest): JoinHandle | undefined | Promise<JoinHandle | undefined>
  /** `kicked`: tell the client it left the room, and with which code */
  leaveRoom (conn: RealtimeConnection, room: string, kicked?: string): Promise<void> | undefined
  leaveAll (conn: RealtimeConnection): void
  broadcast (room: string, type: string, data?: unknown, opts?: BroadcastOptions): void
  /** write a pre-built frame; false when it was dropped */
  writeFrame (conn: RealtimeConnection, frame: Buffer, payload: string): boolean
  sendError (conn: RealtimeConnection, code: string, id?: string | number, message?: string, details?: unknown[]): void
  /** throw FST_REALTIME_INVALID_OUTGOING for data that does not match its type's declared schema */
  checkOutgoing (type: string, data: unknown): void
  /** whether what the server sends is checked (acks included) */
  readonly validateOutgoing: boolean
  members (room: string): Promise<Member[]>
  localMembers (room: string): Member[]
  readonly maxRoomsPerConnection: number
  readonly rateLimit: Readonly<{ max: number, windowMs: number }>
  readonly log: FastifyBaseLogger
  /** one message arrived (before any check) */
  received (conn: RealtimeConnection): void
  /** a message was refused or dropped, for `reason` */
  dropped (reason: DropReason): void
  /** what the metrics option counts; undefined when it is off */
  readonly metrics: RealtimeMetrics | undefined
  /** the socket closed */
  connectionClosed (conn: RealtimeConnection, code: number, reason: string): void
}

/** What the handshake verified, handed to the connection. */
export interface Handshake {
  user: RealtimeUser | null
  sub: string | null
  expiresAt: number | undefined
}

/**
 * One WebSocket connection: the public `Connection` API over its socket. The
 * state other modules own (writer, rate window, liveness, expiry, inbound
 * queue) sits on it under their symbols, initialised here so every connection
 * has the same shape.
 */
export class RealtimeConnection implements Connection {
  readonly id: string
  user: RealtimeUser
  sub: string | null
  readonly request: ConnectionRequest
  readonly ws: WebSocket
  readonly route: CompiledRoute;
  [kHost]: ConnectionHost;
  [kRooms]: string | Set<string> | undefined = undefined;
  [kPending]: Buffer | Buffer[] | undefined = undefined;
  [kTurnBytes] = 0;
  [kRateStart] = 0;
  [kRateCount] = 0;
  [kAlive] = true;
  [kReadMark] = 0;
  [kExpiry]: NodeJS.Timeout | undefined = undefined;
  [kDropTimer]: NodeJS.Timeout | undefined = undefined;
  [kBusy] = false;
  /** frames waiting behind a pending handler, and their bytes; created when first needed */
  [kBacklog]: { frames: Buffer[], bytes: number, paused: boolean } | undefined = undefined;
  [kMessagesIn] = 0;
  [kMessagesOut] = 0;
  [kOpenedAt] = 0;
  [kCloseSent]: { code: number, reason: string } | undefined = undefined
  /** the per-user slot this connection holds, released on close (null: none, undefined: nothing held) */
  slotUser: string | null | undefined
  #closing = false

  constructor (host: ConnectionHost, id: string, route: CompiledRoute, ws: WebSocket, request: FastifyRequest, handshake: Handshake) {
    this.id = id
    this[kHost] = host
    this.route = route
    this.ws = ws
    this.request = request
    this.user = handshake.user as RealtimeUser
    this.sub = handshake.sub
    this.slotUser = undefined
    // the listeners every connection shares find theirs on the socket: no closures per connection
    ;(ws as unknown as Record<symbol, RealtimeConnection>)[kConnection] = this
  }

  get rooms (): ReadonlySet<string> {
    return this[kHost].roomsOf(this)
  }

  get log (): FastifyBaseLogger {
    return this.request.log
  }

  get open (): boolean {
    return !this.#closing && this.ws.readyState === 1
  }

  /** Whether a close began (by either side). */
  get closing (): boolean {
    return this.#closing
  }

  send (type: string, data?: unknown, room?: string): boolean {
    if (room !== undefined) assertRoom(room)
    this[kHost].checkOutgoing(type, data)
    return this.sendPayload(serialize(type, data, room))
  }

  async join (room: string): Promise<void> {
    const handle = await this[kHost].joinRoom(this, room)
    handle?.release()
  }

  async leave (room: string): Promise<void> {
    await this[kHost].leaveRoom(this, room, 'LEFT')
  }

  broadcast (room: string, type: string, data?: unknown, opts?: BroadcastOptions): void {
    this[kHost].broadcast(room, type, data, opts)
  }

  close (code: number = CloseCode.NORMAL, reason = ''): void {
    // checked before any state changes: a throw must not leave a half-closed connection
    if (!isSendableCloseCode(code)) throw new errors.FST_REALTIME_INVALID_CLOSE_CODE(String(code))
    if (this.#closing) return
    this.#closing = true
    const sentReason = closeReason(String(reason))
    // the code the closing handshake carries, whatever the peer echoes (ws ignores a close once one began)
    if (this.ws.readyState === 1) this[kCloseSent] = { code, reason: sentReason }
    this[kHost].leaveAll(this)
    // the socket writes what this turn holds for it first (RealtimeSocket)
    this.ws.close(code, sentReason)
  }

  terminate (): void {
    this.#closing = true
    this.ws.terminate()
  }

  /** Write a serialised envelope to this connection only. */
  sendPayload (payload: string): boolean {
    return this[kHost].writeFrame(this, textFrame(payload), payload)
  }

  /** The socket closed: nothing more is written or read. */
  markClosed (): void {
    this.#closing = true
  }
}

/** The connection a socket belongs to (set in its constructor). */
export function connectionOf (ws: WebSocket): RealtimeConnection {
  return (ws as unknown as Record<symbol, RealtimeConnection>)[kConnection]
}

/** The 'close' listener every connection shares (`this` is the socket). */
export function onSocketClose (this: WebSocket, code: number, reason: Buffer): void {
  const conn = connectionOf(this)
  conn[kHost].connectionClosed(conn, code, reason.toString())
}

/**
 * The socket's error listener (ws reports protocol errors: oversize, bad UTF-8,
 * bad frames, and closes with the error's code). Logged quietly.
 */
export function onSocketError (this: WebSocket, err: Error): void {
  connectionOf(this).log.debug({ err }, 'fastify-realtime: websocket error')
  if (this.readyState < 2) this.terminate()
}
