import type { Static, TSchema } from '@sinclair/typebox'
import type { FastifyRequest } from 'fastify'
import type { Adapter } from './adapters/adapter.js'
import type { Connection } from './connection.js'

/**
 * The verified JWT payload on `conn.user`. Augment it to type your claims:
 * @example
 * declare module 'fastify-realtime' { interface RealtimeUser { sub: string, rooms: string[] } }
 */
export interface RealtimeUser {
  [claim: string]: any
}

/** A parsed, validated incoming envelope. */
export interface IncomingEnvelope<D = unknown> {
  type: string
  room?: string
  data?: D
  id?: string | number
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

/** A declarative WebSocket route (SPEC section 3). */
export interface RouteDefinition<M extends MessageSchemas = MessageSchemas> {
  path: string
  messages?: MessageMap<M>
  /** Authorise a join; default: allow. */
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

export type AllowedOrigins = '*' | readonly string[] | ((origin: string) => boolean)

/** Plugin options (SPEC section 2). Every option is optional. */
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
}

/** Options of `broadcast`. */
export interface BroadcastOptions {
  /** Connection id or ids that do not receive this broadcast. */
  except?: string | readonly string[]
}

/** One member of a room, on any instance. */
export interface Member {
  id: string
  sub: string | null
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
