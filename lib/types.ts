import type { Static, TSchema } from '@sinclair/typebox'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { Adapter } from './adapters/adapter.js'
import type { IncomingEnvelope, Member } from './protocol.js'

export type { IncomingEnvelope, Member }

/**
 * The verified JWT payload on `conn.user`. Augment it to type your claims:
 * @example
 * declare module 'fastify-realtime' { interface RealtimeUser { sub: string, rooms: string[] } }
 */
export interface RealtimeUser {
  [claim: string]: any
}

/** Options of `broadcast`. */
export interface BroadcastOptions {
  /** Connection id or ids that do not receive this broadcast. */
  except?: string | readonly string[]
}

/**
 * One WebSocket connection, as handlers, hooks and `app.realtime.connections()` see it.
 * @example
 * handler (conn, data, msg) { conn.broadcast(msg.room!, 'chat.message', { from: conn.sub, text: data.text }) }
 */
export interface Connection {
  /** Unique id, across instances. */
  readonly id: string
  /** The verified JWT payload; `null` for anonymous clients when `auth.required` is false. */
  readonly user: RealtimeUser
  /** The verified token's `sub` (a number as its decimal string), or null. */
  readonly sub: string | null
  /** The upgrade request (headers, ip, id, log). */
  readonly request: FastifyRequest
  /** The request's logger. */
  readonly log: FastifyBaseLogger
  /** The rooms this connection is in, on this instance. */
  readonly rooms: ReadonlySet<string>
  /** Whether the connection is open and not being closed. */
  readonly open: boolean
  /**
   * Send one message to this connection; false when it is closed or closing.
   * Throws a TypeError (`FST_REALTIME_INVALID_ROOM`) when `room` is given and is not a valid name.
   * @example conn.send('welcome', { motd: 'hi' })
   */
  send (type: string, data?: unknown, room?: string): boolean
  /**
   * Join a room from server code (no `canJoin` check, no room limit).
   * Throws a TypeError (`FST_REALTIME_INVALID_ROOM`) for an invalid room name.
   * @example await conn.join('user:' + conn.sub)
   */
  join (room: string): Promise<void>
  /**
   * Leave a room from server code; the client is told with a `kicked` envelope (code `LEFT`).
   * @example await conn.leave('lobby')
   */
  leave (room: string): Promise<void>
  /**
   * Broadcast to a room (this connection included unless excepted).
   * @example conn.broadcast('lobby', 'chat.message', { text }, { except: conn.id })
   */
  broadcast (room: string, type: string, data?: unknown, opts?: BroadcastOptions): void
  /**
   * Close with a code and reason (4403 to kick). Throws a TypeError
   * (`FST_REALTIME_INVALID_CLOSE_CODE`) for a code a server may not send.
   * @example conn.close(4403, 'banned')
   */
  close (code?: number, reason?: string): void
  /** Drop the connection at once, without a closing handshake. */
  terminate (): void
}

/** One message type of a route: its TypeBox schema and the handler that receives validated data. */
export interface MessageDefinition<S extends TSchema = TSchema, R = unknown> {
  schema: S
  /** Runs with `data` validated against `schema`; the return value becomes the ack's `data`. */
  handler: (conn: Connection, data: Static<S>, msg: IncomingEnvelope<Static<S>>) => R | Promise<R>
}

/** Schemas of a route's message types, keyed by type. */
export type MessageSchemas = Record<string, TSchema>

/** The `messages` map of a route, with each handler's `data` typed from its own schema. */
export type MessageMap<M extends MessageSchemas> = {
  [K in keyof M]: MessageDefinition<M[K]>
}

/** A declarative WebSocket route. */
export interface RouteDefinition<M extends MessageSchemas = MessageSchemas> {
  path: string
  messages?: MessageMap<M>
  /** Authorise a join; default: the plugin-level `canJoin`, else allow. */
  canJoin?: (conn: Connection, room: string) => boolean | undefined | Promise<boolean | undefined>
  onConnect?: (conn: Connection) => void | Promise<void>
  onClose?: (conn: Connection, code: number, reason: string) => void
  /** Send `presence` join/leave events to room members; default false. */
  presence?: boolean
}

export interface AuthOptions {
  /** [true] refuse upgrades without a valid token; false lets anonymous clients in with `conn.user === null`. */
  required?: boolean
  /** Read the token from somewhere else; return undefined when there is none. */
  extractToken?: (request: FastifyRequest) => string | undefined
}

export interface HeartbeatOptions {
  /** [30000] ms between ping sweeps; a connection silent for a whole sweep is terminated. */
  interval?: number
}

export interface RateLimitOptions {
  /** [100] messages allowed per window. */
  max?: number
  /** [1000] window length in ms. */
  windowMs?: number
}

/** Room history (SPEC section 10): what rooms keep for clients that come back. */
export interface HistoryOptions {
  /** Messages kept per room, 1 to 10000 (required). */
  size: number
  /** [300000] ms a message is kept at most; at least 1000. */
  ttl?: number
  /** [every room] which rooms keep history. */
  rooms?: (room: string) => boolean
}

/** How `app.close()` lets clients go (SPEC section 11). */
export interface DrainOptions {
  /** [0] ms over which connections are closed with 1012, in random order; 0 sends 1001 to all at once. */
  spread?: number
  /** [1000] ms a client should wait at most before it reconnects: the `retry <ms>` of the close reason. */
  retry?: number
}

/** One kept message, as `app.realtime.history()` returns it. */
export interface HistoryMessage {
  offset: number
  type: string
  data?: unknown
}

/** What `app.realtime.history()` resolves to. */
export interface HistoryPage {
  /** the room's epoch: offsets compare only within one */
  epoch: string
  /** the room's latest offset (0 before any broadcast) */
  offset: number
  /** oldest first */
  messages: HistoryMessage[]
}

/** Options of `app.realtime.history()`. */
export interface HistoryReadOptions {
  /** messages after this offset (default: the last `limit` kept) */
  since?: number
  /** [history.size] at most this many: the first after `since`, or the last kept */
  limit?: number
}

export type AllowedOrigins = '*' | readonly string[] | ((origin: string) => boolean)

/**
 * Where the metrics are registered: a prom-client `Registry` (only these three
 * methods are used, so the types compile without prom-client installed).
 */
export interface MetricsRegistry {
  registerMetric (metric: any): void
  getSingleMetric (name: string): unknown
  removeSingleMetric (name: string): void
}

export interface MetricsOptions {
  /** [prom-client's global registry] */
  registry?: MetricsRegistry
  /** ['realtime_'] prefix of every metric name */
  prefix?: string
}

/** A logger level, or 'silent' for no line at all. */
export type ConnectionLogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'

/** Plugin options. Every option is optional. */
export interface RealtimeOptions {
  /** [[]] route definitions; `app.realtime.route(def)` adds one later, before `ready`. */
  routes?: ReadonlyArray<RouteDefinition<any>>
  /** [{ required: true }] */
  auth?: AuthOptions
  /** [10000] open connections per process; further upgrades get HTTP 503 with Retry-After. */
  maxConnections?: number
  /** [none] open connections per JWT `sub`; further upgrades get HTTP 429. */
  maxConnectionsPerUser?: number
  /** [65536] bytes of one incoming message; larger closes with 1009. */
  maxPayload?: number
  /** [{ interval: 30000 }] server ping sweep; false turns it off. */
  heartbeat?: HeartbeatOptions | false
  /** [100] rooms one connection may be in. */
  maxRoomsPerConnection?: number
  /** [{ max: 100, windowMs: 1000 }] incoming messages per connection. */
  rateLimit?: RateLimitOptions
  /** [1048576] unsent bytes past which a slow consumer is closed with 1013. */
  maxBufferedBytes?: number
  /** [same host] which browser origins may connect. */
  allowedOrigins?: AllowedOrigins
  /** [in-memory] where broadcasts travel between instances. */
  adapter?: Adapter
  /** [5000] ms `app.close()` waits for clients after sending 1001. */
  closeGracePeriod?: number
  /** [false] permessage-deflate; when on, maxPayload applies to the inflated size. */
  perMessageDeflate?: boolean
  /**
   * [allow] the join rule of every route that has no `canJoin` of its own, so a
   * room one route guards cannot be joined through another route that forgot to.
   */
  canJoin?: RouteDefinition['canJoin']
  /** [1000] ms the plugin waits for an adapter call (join, leave, members) before going on without it. */
  adapterTimeout?: number
  /**
   * [off] Prometheus metrics through prom-client (an optional peer dependency):
   * `true`, or `{ registry, prefix }`. The metrics are listed in docs/metrics.md.
   * @example
   * const registry = new Registry()
   * await app.register(realtime, { routes, metrics: { registry } })
   * app.get('/metrics', async (request, reply) => reply.type(registry.contentType).send(await registry.metrics()))
   */
  metrics?: boolean | MetricsOptions
  /** ['info'] level of the line logged when a connection opens and when it closes; 'silent' logs neither. */
  connectionLogLevel?: ConnectionLogLevel
  /** [off] rooms keep their last messages, with offsets, for clients that reconnect. */
  history?: HistoryOptions | false
  /** [{ spread: 0 }] close connections over `spread` ms with 1012 on `app.close()`. */
  drain?: DrainOptions
}

/** Counters of `app.realtime.stats()`. */
export interface RealtimeStats {
  connections: number
  rooms: number
  messagesIn: number
  messagesOut: number
  drops: number
  errors: number
  adapter: { connected: boolean }
}

/**
 * `app.realtime`: broadcast, send, rooms, members and stats, from any route or hook.
 * @example
 * app.post('/news', async (request) => {
 *   app.realtime.broadcast('public:news', 'news.item', request.body)
 *   return { ok: true }
 * })
 */
export interface RealtimeServer {
  /**
   * Add a route after registration, before `ready`.
   * @example app.realtime.route({ path: '/feed', messages: {} })
   */
  route<M extends MessageSchemas>(def: RouteDefinition<M>): void
  /**
   * Send to every member of `room`, on every instance, except the given connection ids.
   * Throws a TypeError (`FST_REALTIME_INVALID_ROOM`) for an invalid room name.
   * @example app.realtime.broadcast('public:news', 'news.item', { title: 'hello' })
   */
  broadcast (room: string, type: string, data?: unknown, opts?: BroadcastOptions): void
  /**
   * Send to one connection of this instance; false when it is not here or not open.
   * @example app.realtime.send(connId, 'notice', { text: 'hi' })
   */
  send (connId: string, type: string, data?: unknown): boolean
  /**
   * Send to every connection of a user (JWT `sub`), on every instance.
   * @example app.realtime.sendToUser('alice', 'notification', { unread: 3 })
   */
  sendToUser (sub: string, type: string, data?: unknown): void
  /**
   * Members of a room, on every instance the adapter reaches.
   * @example const members = await app.realtime.members('lobby')
   */
  members (room: string): Promise<Member[]>
  /** Names of the rooms with a member on this instance. */
  rooms (): string[]
  /** The open connections of this instance. */
  connections (): Connection[]
  /** Counters of this instance. */
  stats (): RealtimeStats
  /**
   * Kept messages of a room with history: the first `limit` after `since`, or
   * the last `limit` kept. Throws a TypeError (`FST_REALTIME_INVALID_ROOM`) for
   * an invalid room name, `FST_REALTIME_NO_HISTORY` for a room that keeps none.
   * @example const { epoch, offset, messages } = await app.realtime.history('chat:1', { limit: 50 })
   */
  history (room: string, opts?: HistoryReadOptions): Promise<HistoryPage>
  /** `false` until `app.close()` begins, `true` from then on: what a readiness probe reads. */
  readonly draining: boolean
}
