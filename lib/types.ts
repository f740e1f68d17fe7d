import type { Static, TSchema } from '@sinclair/typebox'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import type { IncomingHttpHeaders } from 'node:http'
import type { Socket } from 'node:net'
import type { Adapter } from './adapters/adapter.js'
import type { IncomingEnvelope as WireEnvelope, Member as WireMember } from './protocol.js'

// declared here, not re-exported with `export type { }`: the CommonJS types
// (dist/cjs/main.d.ts) alias every export, and an alias cannot reach those
/** A parsed, validated incoming envelope. */
export type IncomingEnvelope<D = unknown> = WireEnvelope<D>
/** One member of a room, on any instance. */
export type Member = WireMember

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
 * A TypeBox schema: from `@sinclair/typebox` 0.34 (the plugin's own) or from
 * `typebox` 1.x (the package `@fastify/type-provider-typebox` 6 uses).
 */
export type Schema = TSchema | { readonly '~kind': string } | { readonly '~unsafe': unknown }

/** The data type a schema describes, with either TypeBox. */
export type StaticOf<S> = S extends TSchema ? Static<S> : StaticOfV1<S>

/**
 * The data type of a TypeBox 1.x schema. `typebox` is an optional peer: where
 * it is not installed, the import fails quietly and such data types as `any`.
 */
// @ts-ignore -- optional peer (see above); scripts/optional-peer-types.mjs repeats this in the built .d.ts
export type StaticOfV1<S> = S extends import('typebox').TSchema ? import('typebox').Static<S> : unknown

/** Schemas keyed by message type: a route's `emits`. */
export type SchemaMap = Record<string, Schema>

/** The data types of a schema map. */
export type StaticMap<E> = { [K in keyof E]: StaticOf<E[K]> }

/**
 * What the server sends, app-wide: message type to data type. Empty until you
 * augment it; then `app.realtime.broadcast`, `send`, `sendToUser` and every
 * connection's `send` and `broadcast` check the data of those types (other
 * types stay allowed and untyped).
 * @example
 * declare module 'fastify-realtime' {
 *   interface RealtimeEmits extends EmitsOf<typeof chatRoute> {}
 * }
 */
export interface RealtimeEmits {}

/** Data types a connection of a route sends: the app-wide `RealtimeEmits`, then the route's own `emits`. */
export type ConnectionEmits<E> = Omit<RealtimeEmits, keyof E> & E

/**
 * The arguments after `type` of an outgoing call: the declared data of `T`
 * (required), or, for a type nobody declared, any data (optional); then `Rest`.
 */
export type OutgoingArgs<E, T extends string, Rest extends unknown[] = []> =
  T extends keyof E ? [data: E[T], ...rest: Rest] : [data?: unknown, ...rest: Rest]

/**
 * One WebSocket connection, as handlers, hooks and `app.realtime.connections()` see it.
 * `E` types what it sends (a route's `emits` in that route's handlers).
 * @example
 * handler (conn, data, msg) { conn.broadcast(msg.room!, 'chat.message', { from: conn.sub, text: data.text }) }
 */
/**
 * `conn.request.raw` once the connection is open: what is kept of the
 * upgrade's `IncomingMessage` (its raw header list and stream state are let go,
 * so an idle connection costs less heap). Its `'close'` is the socket's.
 */
export interface UpgradeRequestView {
  readonly headers: IncomingHttpHeaders
  readonly url?: string | undefined
  /** the URL the client asked for, when the app's `rewriteUrl` changed it */
  readonly originalUrl?: string | undefined
  readonly method?: string | undefined
  readonly httpVersion: string
  readonly httpVersionMajor: number
  readonly httpVersionMinor: number
  readonly socket: Socket
  /** Node's old name for `socket` */
  readonly connection: Socket
  readonly complete: boolean
  readonly aborted: boolean
  readonly destroyed: boolean
  on: (event: string | symbol, listener: (...args: any[]) => void) => this
  once: (event: string | symbol, listener: (...args: any[]) => void) => this
  addListener: (event: string | symbol, listener: (...args: any[]) => void) => this
  removeListener: (event: string | symbol, listener: (...args: any[]) => void) => this
  off: (event: string | symbol, listener: (...args: any[]) => void) => this
}

/**
 * The upgrade request as a connection keeps it: Fastify's request, the same
 * object the app's hooks saw (decorations and what hooks set, `id`, `log`,
 * `headers`, `ip`, `ips`, `hostname`, `url`, `method`, `query`, `params`,
 * `signal`, `user`), with `raw` slimmed to an UpgradeRequestView. A
 * FastifyRequest is assignable to it; where a function wants a FastifyRequest,
 * cast (`conn.request as FastifyRequest`) knowing `raw` is the slim view.
 */
export type ConnectionRequest = Omit<FastifyRequest, 'raw'> & { readonly raw: UpgradeRequestView }

export interface Connection<E extends object = {}> {
  /** Unique id, across instances. */
  readonly id: string
  /** The verified JWT payload; `null` for anonymous clients when `auth.required` is false. */
  readonly user: RealtimeUser
  /** The verified token's `sub` (a number as its decimal string), or null. */
  readonly sub: string | null
  /**
   * The upgrade request: Fastify's request as the app's hooks saw it (headers,
   * ip, id, log, query, decorations), with `raw` slimmed once the connection is
   * open (see ConnectionRequest).
   */
  readonly request: ConnectionRequest
  /** The request's logger. */
  readonly log: FastifyBaseLogger
  /** The rooms this connection is in, on this instance: a snapshot, taken at each read. */
  readonly rooms: ReadonlySet<string>
  /** Whether the connection is open and not being closed. */
  readonly open: boolean
  /**
   * Send one message to this connection; false when it is closed or closing.
   * Throws a TypeError (`FST_REALTIME_INVALID_ROOM`) when `room` is given and is not a valid name.
   * Data of a declared type is checked against its schema (`validateOutgoing`).
   * @example conn.send('welcome', { motd: 'hi' })
   */
  send<T extends string> (type: T, ...args: OutgoingArgs<ConnectionEmits<E>, T, [room?: string]>): boolean
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
   * Data of a declared type is checked against its schema (`validateOutgoing`).
   * @example conn.broadcast('lobby', 'chat.message', { text }, { except: conn.id })
   */
  broadcast<T extends string> (room: string, type: T, ...args: OutgoingArgs<ConnectionEmits<E>, T, [opts?: BroadcastOptions]>): void
  /**
   * Close with a code and reason (4403 to kick). Throws a TypeError
   * (`FST_REALTIME_INVALID_CLOSE_CODE`) for a code a server may not send.
   * @example conn.close(4403, 'banned')
   */
  close (code?: number, reason?: string): void
  /** Drop the connection at once, without the close handshake. */
  terminate (): void
}

/** What a handler may return: the data of its `ack` schema, or anything without one. */
export type AckData<A> = A extends Schema ? StaticOf<A> : unknown

/**
 * One message type of a route: its TypeBox schema, the schema of its ack, and
 * the handler that receives validated data.
 */
export interface MessageDefinition<S extends Schema = Schema, A = Schema | undefined, E extends object = {}> {
  schema: S
  /**
   * The schema of the ack's `data`: the handler must return (or resolve to)
   * data of it; a result that does not match is logged and answered with
   * HANDLER_ERROR (`validateOutgoing`).
   */
  ack?: A extends Schema ? A : never
  /** Runs with `data` validated against `schema`; the return value becomes the ack's `data`. */
  handler: (conn: Connection<E>, data: StaticOf<S>, msg: IncomingEnvelope<StaticOf<S>>) => AckData<A> | Promise<AckData<A>>
}

/** Schemas of a route's message types, keyed by type. */
export type MessageSchemas = Record<string, Schema>

/**
 * The `messages` map of a route: each handler's `data` typed from its own
 * schema, its result from its own `ack`, its `conn` from the route's `emits`.
 */
export type MessageMap<M extends MessageSchemas, A = {}, E extends object = {}> = {
  [K in keyof M]: MessageDefinition<M[K], K extends keyof A ? A[K] : unknown, E>
} & {
  // infers each message's `ack` schema (a mapped type over A, so TypeScript reads A back from `messages`)
  [K in keyof A]: { ack?: A[K] }
}

/**
 * A declarative WebSocket route.
 * @example
 * defineRoute({
 *   path: '/chat',
 *   emits: { 'chat.message': Type.Object({ from: Type.String(), text: Type.String() }) },
 *   messages: {
 *     'chat.send': {
 *       schema: Type.Object({ text: Type.String() }),
 *       ack: Type.Object({ ok: Type.Boolean() }),
 *       handler (conn, data, msg) {
 *         conn.broadcast(msg.room!, 'chat.message', { from: conn.sub ?? 'anonymous', text: data.text })
 *         return { ok: true }
 *       }
 *     }
 *   }
 * })
 */
export interface RouteDefinition<M extends MessageSchemas = MessageSchemas, E extends SchemaMap = {}, A = {}> {
  path: string
  /** What the server sends on this route: message type to the schema of its `data` (type names are app-wide). */
  emits?: E
  messages?: MessageMap<M, A, StaticMap<E>>
  /** Authorise a join; default: the plugin-level `canJoin`, else allow. */
  canJoin?: (conn: Connection, room: string) => boolean | undefined | Promise<boolean | undefined>
  onConnect?: (conn: Connection<StaticMap<E>>) => void | Promise<void>
  onClose?: (conn: Connection<StaticMap<E>>, code: number, reason: string) => void
  /** Send `presence` join/leave events to room members; default false. */
  presence?: boolean
  /** Type only, never set: the data types of `emits`, for `EmitsOf` and the typed client. */
  readonly '~emits'?: StaticMap<E>
}

/**
 * The data types a route sends, from its definition (`typeof chatRoute`): what
 * `RealtimeEmits` extends to type `app.realtime` app-wide.
 */
export type EmitsOf<R> = R extends { readonly '~emits'?: infer E } ? NonNullable<E> : {}

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
  routes?: ReadonlyArray<RouteDefinition<any, any, any>>
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
  /**
   * [true unless NODE_ENV is 'production' when register runs] check what the
   * server sends against the declared schemas (`emits`, `ack`): a mismatch
   * throws FST_REALTIME_INVALID_OUTGOING at the call, and nothing is sent.
   */
  validateOutgoing?: boolean
  /** [off] serve `app.realtime.asyncapi()` as JSON at `GET path`. */
  asyncapi?: AsyncApiOptions
}

/** Option `asyncapi`. */
export interface AsyncApiOptions {
  /** Where the document is served, e.g. '/asyncapi.json'. */
  path: string
  /** The document's `info` (default: title 'fastify-realtime', version '1.0.0'). */
  info?: { title?: string, version?: string, description?: string }
}

/** An AsyncAPI 3.0.0 document (plain JSON). */
export interface AsyncApiDocument {
  asyncapi: '3.0.0'
  info: { title: string, version: string, description?: string }
  defaultContentType: string
  channels: Record<string, unknown>
  operations: Record<string, unknown>
  components: Record<string, unknown>
  [extension: `x-${string}`]: unknown
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
  route<M extends MessageSchemas, E extends SchemaMap = {}, A = {}>(def: RouteDefinition<M, E, A>): void
  /**
   * Send to every member of `room`, on every instance, except the given connection ids.
   * Throws a TypeError (`FST_REALTIME_INVALID_ROOM`) for an invalid room name, and
   * `FST_REALTIME_INVALID_OUTGOING` for data that does not match the type's declared schema.
   * @example app.realtime.broadcast('public:news', 'news.item', { title: 'hello' })
   */
  broadcast<T extends string> (room: string, type: T, ...args: OutgoingArgs<RealtimeEmits, T, [opts?: BroadcastOptions]>): void
  /**
   * Send to one connection of this instance; false when it is not here or not open.
   * @example app.realtime.send(connId, 'notice', { text: 'hi' })
   */
  send<T extends string> (connId: string, type: T, ...args: OutgoingArgs<RealtimeEmits, T>): boolean
  /**
   * Send to every connection of a user (JWT `sub`), on every instance.
   * @example app.realtime.sendToUser('alice', 'notification', { unread: 3 })
   */
  sendToUser<T extends string> (sub: string, type: T, ...args: OutgoingArgs<RealtimeEmits, T>): void
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
  /**
   * The AsyncAPI 3.0.0 document of every route: each message type in both
   * directions with its schema and ack, the protocol's own messages, error and
   * close codes, and the JWT security schemes.
   * @example app.get('/docs/asyncapi.json', async () => app.realtime.asyncapi())
   */
  asyncapi (): AsyncApiDocument
}
