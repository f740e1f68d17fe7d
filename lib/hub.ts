import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Adapter, AdapterHub } from './adapters/adapter.js'
import { MemoryAdapter } from './adapters/memory.js'
import { disarmExpiry } from './auth.js'
import type { ConnectionHost, RealtimeConnection } from './connection.js'
import { assertRoom, serialize, serializeBody, serializeError } from './envelope.js'
import { connectionEnded, connectionOpened } from './connection-events.js'
import { errors } from './errors.js'
import { createRoomFeeds, type JoinHandle, type JoinRequest, type RoomFeeds } from './history/feed.js'
import { ConnectionLimits, cancelDrop, closeSlowConsumer, isSlowConsumer } from './limits.js'
import type { DropReason, RealtimeMetrics } from './metrics.js'
import type { ResolvedOptions } from './options.js'
import { OutgoingContract } from './outgoing.js'
import { errorMessages, type ErrorCode, type Member } from './protocol.js'
import { SharedStrings } from './request.js'
import { RoomRegistry } from './rooms.js'
import { kBacklog, kMessagesIn, kMessagesOut } from './symbols.js'
import type { BroadcastOptions, HistoryPage, HistoryReadOptions, RealtimeStats } from './types.js'
import { frameWriter, textFrame } from './ws/writer.js'

/** Counters behind `stats()`. */
export interface Counters {
  messagesIn: number
  messagesOut: number
  drops: number
  errors: number
}

const NO_EXCEPT: readonly string[] = []
const TIMED_OUT = Symbol('timed out')

function exceptList (except: BroadcastOptions['except']): readonly string[] {
  if (except === undefined) return NO_EXCEPT
  return typeof except === 'string' ? [except] : except
}

/**
 * History reads wait this many times `adapterTimeout`: giving up on one makes
 * the client reload the room (`recovered: false`, `resync`), which costs more
 * than waiting a little longer under load.
 */
const HISTORY_READ_WAIT = 5

/**
 * The internal kernel behind `app.realtime`: connections, users, rooms, limits,
 * the writer and the adapter. Connections, dispatch and the adapter reach it
 * through the interfaces they declare (ConnectionHost, AdapterHub).
 */
export class Hub implements ConnectionHost, AdapterHub {
  readonly instanceId = randomBytes(6).toString('hex')
  readonly options: ResolvedOptions
  readonly log: FastifyBaseLogger
  readonly registry = new RoomRegistry<RealtimeConnection>()
  readonly limits: ConnectionLimits
  readonly adapter: Adapter
  readonly counters: Counters = { messagesIn: 0, messagesOut: 0, drops: 0, errors: 0 }
  readonly maxRoomsPerConnection: number
  readonly rateLimit: Readonly<{ max: number, windowMs: number }>
  /** drops by reason (see dropsByReason) */
  readonly #drops: Record<DropReason, number> = { rate_limited: 0, slow_consumer: 0, closed: 0, backlog: 0, history_unavailable: 0 }
  /** local delivery of rooms with history; undefined when the `history` option is off */
  readonly #history: RoomFeeds<RealtimeConnection> | undefined
  /** the app's emitted types and the `validateOutgoing` check */
  readonly outgoing: OutgoingContract
  readonly #connections = new Map<string, RealtimeConnection>()
  /** each user's connections: the connection itself while it is the only one (no Set per user) */
  readonly #byUser = new Map<string, RealtimeConnection | Set<RealtimeConnection>>()
  #sequence = 0
  /** true once `app.close()` began */
  closing = false
  /** the app registered @fastify/websocket before this plugin */
  foreignWebsocket = false
  /** the `metrics` option's counters; set by the plugin before any route */
  metrics: RealtimeMetrics | undefined = undefined
  /** header values and URLs kept once for all the connections that sent them */
  readonly sharedStrings = new SharedStrings()

  constructor (options: ResolvedOptions, log: FastifyBaseLogger) {
    this.options = options
    this.log = log
    this.maxRoomsPerConnection = options.maxRoomsPerConnection
    this.rateLimit = options.rateLimit
    this.limits = new ConnectionLimits(options.maxConnections, options.maxConnectionsPerUser)
    this.adapter = options.adapter ?? new MemoryAdapter()
    this.#history = options.history === undefined
      ? undefined
      : createRoomFeeds<RealtimeConnection>(options.history, this.adapter, {
        membersOf: (room) => this.registry.membersOf(room),
        writeFrame: (conn, frame, payload) => this.writeFrame(conn, frame, payload),
        deliverUnkept: (room, payload, except) => {
          this.dropped('history_unavailable')
          this.deliverToRoom(room, payload, except)
        },
        log
      }, HISTORY_READ_WAIT * options.adapterTimeout)
    this.outgoing = new OutgoingContract(options.validateOutgoing)
  }

  broadcast (room: string, type: string, data?: unknown, opts?: BroadcastOptions): void {
    assertRoom(room)
    // once per broadcast, before anything is sent
    this.outgoing.check(type, data)
    const history = this.#history
    if (history !== undefined && history.keeps(room)) {
      const except = opts?.except === undefined ? undefined : typeof opts.except === 'string' ? [opts.except] : [...opts.except]
      history.broadcast(room, serializeBody(type, data, room), except !== undefined && except.length > 0 ? except : undefined)
      return
    }
    const payload = serialize(type, data, room)
    const except = exceptList(opts?.except)
    this.deliverToRoom(room, payload, except)
    this.#adapterCall(() => this.adapter.publish(room, payload, except.length > 0 ? except : undefined))
  }

  /** Drops by reason since start, for `drops_total{reason}`. */
  dropsByReason (): Readonly<Record<DropReason, number>> {
    return this.#drops
  }

  /** `app.realtime.history()`: coded TypeErrors for a bad room, a room without history or a bad query. */
  history (room: string, opts: HistoryReadOptions = {}): Promise<HistoryPage> {
    assertRoom(room)
    const history = this.#history
    if (history === undefined || !history.keeps(room)) throw new errors.FST_REALTIME_NO_HISTORY(JSON.stringify(room))
    return history.page(room, opts)
  }

  /** Stop history timers and close its store (app.close()). */
  async closeHistory (): Promise<void> {
    this.#history?.close()
    await this.#history?.store.close()
  }

  send (connId: string, type: string, data?: unknown): boolean {
    const conn = this.#connections.get(connId)
    if (conn !== undefined) return conn.send(type, data)
    // checked whether or not the connection is here, so a bad call fails every time
    this.outgoing.check(type, data)
    return false
  }

  sendToUser (sub: string, type: string, data?: unknown): void {
    this.outgoing.check(type, data)
    const payload = serialize(type, data)
    this.deliverToUser(sub, payload)
    this.#adapterCall(() => this.adapter.publishToUser(sub, payload))
  }

  /** Members on every instance; after `adapterTimeout` without an answer, this instance's. Adapter errors reach the caller. */
  async members (room: string): Promise<Member[]> {
    const members = await this.#timed(this.adapter.members(room))
    return members === TIMED_OUT ? this.localMembers(room) : members
  }

  rooms (): string[] {
    return this.registry.roomNames()
  }

  connections (): RealtimeConnection[] {
    return [...this.#connections.values()]
  }

  stats (): RealtimeStats {
    return {
      connections: this.#connections.size,
      rooms: this.registry.size,
      ...this.counters,
      adapter: { connected: this.adapter.connected }
    }
  }

  /** AdapterHub: deliver a serialised envelope to local members of `room`. */
  deliverToRoom (room: string, payload: string, except: readonly string[] = NO_EXCEPT): void {
    const members = this.registry.membersOf(room)
    if (members === undefined) return
    const frame = textFrame(payload)
    const skip = except.length > 0
    for (const conn of members) {
      if (skip && except.includes(conn.id)) continue
      this.writeFrame(conn, frame, payload)
    }
  }

  /** AdapterHub: deliver to local connections of user `sub`. */
  deliverToUser (sub: string, payload: string): void {
    const conns = this.#byUser.get(sub)
    if (conns === undefined) return
    const frame = textFrame(payload)
    if (!(conns instanceof Set)) this.writeFrame(conns, frame, payload)
    else for (const conn of conns) this.writeFrame(conn, frame, payload)
  }

  /** AdapterHub: members of a room on this instance. */
  localMembers (room: string): Member[] {
    const members = this.registry.membersOf(room)
    if (members === undefined) return []
    const out: Member[] = []
    for (const conn of members) out.push({ id: conn.id, sub: conn.sub })
    return out
  }

  /** AdapterHub: a member of a dead instance, announced as leaving to local members of a room with presence here. */
  memberLost (room: string, member: Member): void {
    // one of ours, announced by a survivor while this instance stalled: it is here (the heartbeat registers it again)
    if (this.#connections.has(member.id)) return
    const members = this.registry.membersOf(room)
    if (members === undefined) return
    for (const conn of members) {
      if (conn.route.presence) {
        this.deliverToRoom(room, serialize('presence', { event: 'leave', member }, room))
        return
      }
    }
  }

  /** Write a pre-built frame to `conn`; a consumer whose backlog passes `maxBufferedBytes` is closed (1013). */
  writeFrame (conn: RealtimeConnection, frame: Buffer, payload: string): boolean {
    if (conn.closing) {
      this.dropped('closed')
      return false
    }
    const buffered = frameWriter.write(conn, frame, payload)
    if (buffered < 0) {
      this.dropped('closed')
      return false
    }
    this.counters.messagesOut++
    conn[kMessagesOut]++
    if (isSlowConsumer(buffered, this.options.maxBufferedBytes)) {
      this.metrics?.dropped('slow_consumer')
      closeSlowConsumer(conn, buffered, this.options.closeGracePeriod)
    }
    return true
  }

  sendError (conn: RealtimeConnection, code: string, id?: string | number, message?: string, details?: unknown[]): void {
    this.counters.errors++
    this.metrics?.error(code)
    conn.sendPayload(serializeError(code, message ?? errorMessages[code as ErrorCode] ?? code, id, details))
  }

  /** ConnectionHost: the `validateOutgoing` check of `conn.send`. */
  checkOutgoing (type: string, data: unknown): void {
    this.outgoing.check(type, data)
  }

  get validateOutgoing (): boolean {
    return this.outgoing.validate
  }

  received (conn: RealtimeConnection): void {
    this.counters.messagesIn++
    conn[kMessagesIn]++
  }

  dropped (reason: DropReason): void {
    this.counters.drops++
    this.metrics?.dropped(reason)
    this.#drops[reason]++
  }

  roomsOf (conn: RealtimeConnection): ReadonlySet<string> {
    return this.registry.roomsOf(conn)
  }

  nextConnectionId (): string {
    // join() builds one flat string; a template this long is a rope of three strings
    return [this.instanceId, '.', (++this.#sequence).toString(36)].join('')
  }

  addConnection (conn: RealtimeConnection): void {
    this.#connections.set(conn.id, conn)
    connectionOpened(conn, this.metrics, this.options.connectionLogLevel)
    const sub = conn.sub
    if (sub === null) return
    const conns = this.#byUser.get(sub)
    if (conns === undefined) this.#byUser.set(sub, conn)
    else if (conns instanceof Set) conns.add(conn)
    else this.#byUser.set(sub, new Set([conns, conn]))
  }

  /** The socket of `conn` closed: let go of everything it held, then run the route's onClose. */
  connectionClosed (conn: RealtimeConnection, code: number, reason: string): void {
    conn.markClosed()
    connectionEnded(conn, code, reason, this.metrics, this.options.connectionLogLevel)
    // drops what the turn still holds, and its bytes from ws.bufferedAmount, now
    frameWriter.release(conn)
    disarmExpiry(conn)
    cancelDrop(conn)
    this.metrics?.receivedUnprocessed(conn.route, conn[kBacklog]?.frames)
    conn[kBacklog] = undefined
    this.leaveAll(conn)
    this.#removeConnection(conn)
    if (conn.slotUser !== undefined) this.limits.release(conn.slotUser)
    const onClose = conn.route.onClose
    if (onClose !== undefined) {
      try {
        onClose(conn, code, reason)
      } catch (err) {
        conn.log.error({ err, connId: conn.id }, 'onClose hook failed')
      }
    }
  }

  #removeConnection (conn: RealtimeConnection): void {
    this.#connections.delete(conn.id)
    const sub = conn.sub
    if (sub === null) return
    const conns = this.#byUser.get(sub)
    if (conns === conn) {
      this.#byUser.delete(sub)
    } else if (conns instanceof Set && conns.delete(conn) && conns.size === 1) {
      const [last] = conns
      this.#byUser.set(sub, last)
    }
  }

  /**
   * Add `conn` to `room`; a promise only when the adapter or the history store went async.
   * The local join stands even if the adapter fails (logged): local delivery goes on.
   * In a room with history, the result is the join's handle: the replay that
   * `request` asked for is written, and the caller sends the ack, then releases
   * live delivery. A client's join always passes a request (`{}` for none), so a
   * join to a room it is already in replays and acks again; server code passes none.
   */
  joinRoom (conn: RealtimeConnection, room: string, request?: JoinRequest): JoinHandle | undefined | Promise<JoinHandle | undefined> {
    assertRoom(room)
    const history = this.#history !== undefined && this.#history.keeps(room) ? this.#history : undefined
    if (this.registry.has(room, conn)) {
      return history === undefined || request === undefined ? undefined : this.#countRecovery(history.join(conn, room, request))
    }
    const first = this.registry.add(room, conn)
    const member = { id: conn.id, sub: conn.sub }
    if (conn.route.presence) this.#presence(room, 'join', member, conn.id)
    const joined = this.#adapterCall(() => this.adapter.join(room, member, first))
    if (history !== undefined) return this.#countRecovery(history.join(conn, room, request ?? {}, joined))
    return joined?.then(() => undefined)
  }

  /** `history_recoveries_total{recovered}`: a join with `since` recovered, or not. */
  #countRecovery (result: JoinHandle | undefined | Promise<JoinHandle | undefined>): JoinHandle | undefined | Promise<JoinHandle | undefined> {
    const metrics = this.metrics
    if (metrics === undefined) return result
    const count = (handle: JoinHandle | undefined): JoinHandle | undefined => {
      const recovered = handle?.ack.recovered
      if (recovered !== undefined) metrics.recovery(recovered)
      return handle
    }
    return result instanceof Promise ? result.then(count) : count(result)
  }

  /**
   * Remove `conn` from `room`; a promise only when the adapter went async.
   * With `kicked`, the client is told first (`{"type":"kicked","room":..,"data":{"code":kicked}}`).
   */
  leaveRoom (conn: RealtimeConnection, room: string, kicked?: string): Promise<void> | undefined {
    if (!this.registry.has(room, conn)) return undefined
    if (kicked !== undefined && conn.open) conn.sendPayload(serialize('kicked', { code: kicked }, room))
    const last = this.registry.remove(room, conn)
    this.#history?.left(conn, room, last)
    const member = { id: conn.id, sub: conn.sub }
    if (conn.route.presence) this.#presence(room, 'leave', member)
    return this.#adapterCall(() => this.adapter.leave(room, member, last))
  }

  /** Leave every room, e.g. on close. */
  leaveAll (conn: RealtimeConnection): void {
    const rooms = this.registry.roomsOf(conn)
    if (rooms.size === 0) return
    for (const room of rooms) this.leaveRoom(conn, room)
  }

  /** Presence events carry no offset and are not kept, in rooms with history too. */
  #presence (room: string, event: 'join' | 'leave', member: Member, except?: string): void {
    const payload = serialize('presence', { event, member }, room)
    const exceptIds = except === undefined ? NO_EXCEPT : [except]
    this.deliverToRoom(room, payload, exceptIds)
    this.#adapterCall(() => this.adapter.publish(room, payload, except === undefined ? undefined : exceptIds))
  }

  /**
   * Run an adapter call; its failure, sync or async, is logged and never reaches
   * the caller (a broadcast or a closing socket must not throw or leave an
   * unhandled rejection), and a call that does not settle within
   * `adapterTimeout` is given up on, so a connection's messages never freeze.
   * A promise, that never rejects, only when the adapter went async.
   */
  #adapterCall (call: () => void | Promise<void>): Promise<void> | undefined {
    let result
    try {
      result = call()
    } catch (err) {
      this.#adapterFailed(err)
      return undefined
    }
    if (result === undefined) return undefined
    return this.#timed(Promise.resolve(result)).then(() => {}, this.#adapterFailed)
  }

  /** `promise`, or TIMED_OUT once it took longer than `adapterTimeout` (logged). */
  async #timed<T> (promise: Promise<T>): Promise<T | typeof TIMED_OUT> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<typeof TIMED_OUT>((resolve) => {
      timer = setTimeout(() => {
        this.log.warn(`fastify-realtime: the adapter did not answer within ${this.options.adapterTimeout} ms; going on without it`)
        resolve(TIMED_OUT)
      }, this.options.adapterTimeout)
      timer.unref()
    })
    try {
      return await Promise.race([promise, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  readonly #adapterFailed = (err: unknown): void => {
    this.log.warn({ err }, 'fastify-realtime: adapter call failed')
  }
}
