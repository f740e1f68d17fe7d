import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Adapter, AdapterHub } from './adapters/adapter.js'
import { MemoryAdapter } from './adapters/memory.js'
import type { Connection } from './connection.js'
import { roomCheck, serialize } from './envelope.js'
import { ConnectionLimits } from './limits.js'
import type { ResolvedOptions } from './options.js'
import { RoomRegistry } from './rooms.js'
import type { BroadcastOptions, Member, RealtimeStats, RouteDefinition } from './types.js'
import { FrameWriter, textFrame } from './writer.js'

/** Counters behind `stats()`. */
export interface Counters {
  messagesIn: number
  messagesOut: number
  drops: number
  errors: number
}

const NO_EXCEPT: readonly string[] = []

function exceptList (except: BroadcastOptions['except']): readonly string[] {
  if (except === undefined) return NO_EXCEPT
  return typeof except === 'string' ? [except] : except
}

/**
 * `app.realtime`: the server side of every route. Holds connections, rooms,
 * limits and the adapter; delivers broadcasts to local members.
 */
export class RealtimeServer implements AdapterHub {
  readonly instanceId = randomBytes(6).toString('hex')
  readonly options: ResolvedOptions
  readonly log: FastifyBaseLogger
  readonly registry = new RoomRegistry<Connection>()
  readonly writer = new FrameWriter()
  readonly limits: ConnectionLimits
  readonly adapter: Adapter
  readonly counters: Counters = { messagesIn: 0, messagesOut: 0, drops: 0, errors: 0 }
  readonly #connections = new Map<string, Connection>()
  /** each user's connections: the connection itself while it is the only one (no Set per user) */
  readonly #byUser = new Map<string, Connection | Set<Connection>>()
  readonly #addRoute: (def: RouteDefinition<any>) => void
  #sequence = 0
  /** @internal true once `app.close()` began */
  closing = false
  /** @internal the app registered @fastify/websocket before this plugin */
  foreignWebsocket = false

  constructor (options: ResolvedOptions, log: FastifyBaseLogger, addRoute: (def: RouteDefinition<any>) => void) {
    this.options = options
    this.log = log
    this.limits = new ConnectionLimits(options.maxConnections, options.maxConnectionsPerUser)
    this.adapter = options.adapter ?? new MemoryAdapter()
    this.#addRoute = addRoute
  }

  /**
   * Add a route after registration, before `ready`.
   * @example app.realtime.route({ path: '/feed', messages: {} })
   */
  route<M extends Record<string, import('@sinclair/typebox').TSchema>>(def: RouteDefinition<M>): void {
    this.#addRoute(def)
  }

  /**
   * Send to every member of `room`, on every instance, except the given connection ids.
   * The envelope is serialised and framed once for all recipients.
   * @example app.realtime.broadcast('public:news', 'news.item', { title: 'hello' })
   */
  broadcast (room: string, type: string, data?: unknown, opts?: BroadcastOptions): void {
    const payload = serialize(type, data, room)
    const except = exceptList(opts?.except)
    this.deliverToRoom(room, payload, except)
    this.#adapterCall(() => this.adapter.publish(room, payload, except.length > 0 ? except : undefined))
  }

  /**
   * Send to one connection of this instance; false when it is not here or not open.
   * @example app.realtime.send(connId, 'notice', { text: 'hi' })
   */
  send (connId: string, type: string, data?: unknown): boolean {
    return this.#connections.get(connId)?.send(type, data) ?? false
  }

  /**
   * Send to every connection of a user (JWT `sub`), on every instance.
   * @example app.realtime.sendToUser('alice', 'notification', { unread: 3 })
   */
  sendToUser (sub: string, type: string, data?: unknown): void {
    const payload = serialize(type, data)
    this.deliverToUser(sub, payload)
    this.#adapterCall(() => this.adapter.publishToUser(sub, payload))
  }

  /**
   * Members of a room, on every instance the adapter reaches.
   * @example const members = await app.realtime.members('lobby')
   */
  async members (room: string): Promise<Member[]> {
    return await this.adapter.members(room)
  }

  /** Names of the rooms with a member on this instance. */
  rooms (): string[] {
    return this.registry.roomNames()
  }

  /** The open connections of this instance. */
  connections (): Connection[] {
    return [...this.#connections.values()]
  }

  /** Counters of this instance. */
  stats (): RealtimeStats {
    return {
      connections: this.#connections.size,
      rooms: this.registry.size,
      ...this.counters,
      adapter: { connected: this.adapter.connected }
    }
  }

  /** @internal AdapterHub: deliver a serialised envelope to local members of `room`. */
  deliverToRoom (room: string, payload: string, except: readonly string[] = NO_EXCEPT): void {
    const members = this.registry.membersOf(room)
    if (members === undefined) return
    const frame = textFrame(payload)
    const skip = except.length > 0
    for (const conn of members) {
      if (skip && except.includes(conn.id)) continue
      conn.writeFrame(frame, payload)
    }
  }

  /** @internal AdapterHub: deliver to local connections of user `sub`. */
  deliverToUser (sub: string, payload: string): void {
    const conns = this.#byUser.get(sub)
    if (conns === undefined) return
    const frame = textFrame(payload)
    if (!(conns instanceof Set)) conns.writeFrame(frame, payload)
    else for (const conn of conns) conn.writeFrame(frame, payload)
  }

  /** @internal AdapterHub */
  localMembers (room: string): Member[] {
    const members = this.registry.membersOf(room)
    if (members === undefined) return []
    const out: Member[] = []
    for (const conn of members) out.push({ id: conn.id, sub: conn.sub })
    return out
  }

  /** @internal */
  nextConnectionId (): string {
    // join() builds one flat string; a template this long is a rope of three strings
    return [this.instanceId, '.', (++this.#sequence).toString(36)].join('')
  }

  /** @internal */
  addConnection (conn: Connection): void {
    this.#connections.set(conn.id, conn)
    const sub = conn.sub
    if (sub === null) return
    const conns = this.#byUser.get(sub)
    if (conns === undefined) this.#byUser.set(sub, conn)
    else if (conns instanceof Set) conns.add(conn)
    else this.#byUser.set(sub, new Set([conns, conn]))
  }

  /** @internal called once a connection's socket closed. */
  removeConnection (conn: Connection): void {
    this.leaveAll(conn)
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
   * @internal add `conn` to `room`; a promise only when the adapter went async.
   * The local join stands even if the adapter fails (logged): local delivery goes on.
   */
  joinRoom (conn: Connection, room: string): Promise<void> | undefined {
    if (!roomCheck.Check(room)) throw new TypeError(`invalid room name ${JSON.stringify(room)}`)
    if (this.registry.has(room, conn)) return undefined
    const first = this.registry.add(room, conn)
    const member = { id: conn.id, sub: conn.sub }
    if (conn.route.presence) this.#presence(room, 'join', member, conn.id)
    return this.#adapterCall(() => this.adapter.join(room, member, first))
  }

  /** @internal remove `conn` from `room`; a promise only when the adapter went async. */
  leaveRoom (conn: Connection, room: string): Promise<void> | undefined {
    if (!this.registry.has(room, conn)) return undefined
    const last = this.registry.remove(room, conn)
    const member = { id: conn.id, sub: conn.sub }
    if (conn.route.presence) this.#presence(room, 'leave', member)
    return this.#adapterCall(() => this.adapter.leave(room, member, last))
  }

  /** @internal leave every room, e.g. on close. */
  leaveAll (conn: Connection): void {
    for (const room of [...this.registry.roomsOf(conn)]) this.leaveRoom(conn, room)
  }

  #presence (room: string, event: 'join' | 'leave', member: Member, except?: string): void {
    this.broadcast(room, 'presence', { event, member }, except === undefined ? undefined : { except })
  }

  /**
   * Run an adapter call; its failure, sync or async, is logged and never reaches
   * the caller (a broadcast or a closing socket must not throw or leave an
   * unhandled rejection). A promise, that never rejects, only when the adapter went async.
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
    return Promise.resolve(result).catch(this.#adapterFailed)
  }

  readonly #adapterFailed = (err: unknown): void => {
    this.log.warn({ err }, 'fastify-realtime: adapter call failed')
  }
}
