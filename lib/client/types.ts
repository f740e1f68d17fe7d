// Types of the client. No runtime code and no imports: the client stays
// dependency-free, and route definitions are read structurally.

/** Payload types keyed by message type. */
export type PayloadMap = Record<string, any>

/** One envelope as the server sends it (SPEC section 5). */
export interface Envelope<T = unknown> {
  type: string
  room?: string
  data?: T
  id?: string | number
  /** the room message's place in the room's history, in a room that keeps one */
  offset?: number
  /** on a `drop` event (whose data is the dropped envelope): why it was given up */
  reason?: DropReason
}

/** An envelope the client sends (or queued, or dropped). */
export interface OutgoingEnvelope {
  type: string
  room?: string
  data?: unknown
  id?: number
}

/** One member of a room. */
export interface Member {
  id: string
  sub: string | null
}

/**
 * The data of a join ack: `members` (and `total`) only when the route has
 * `presence: true`; `offset` and `epoch` only for a room with history, and
 * `recovered` when the join asked for what it missed (`since`).
 */
export interface JoinAck {
  room: string
  members?: Member[]
  total?: number
  /** the room's latest offset when the server built the ack (0 before any broadcast) */
  offset?: number
  epoch?: string
  /** false: the server could not send everything missed; the client emitted `resync` */
  recovered?: boolean
}

/** Options of `join`. */
export interface JoinOptions {
  /** Ask for the last `history` messages the room keeps (1 to 10000), sent before the ack. */
  history?: number
}

/** The data of a `presence` event. */
export interface PresenceEvent {
  event: 'join' | 'leave'
  member: Member
}

/** Data of the `close` event. */
export interface CloseInfo {
  code: number
  reason: string
}

/** Data of the `reconnecting` event. */
export interface ReconnectInfo {
  /** 1 for the first retry after a drop, growing until a connection opens. */
  attempt: number
  /** ms until the attempt. */
  delay: number
}

/** Why a message was given up: the bound pushed it out, the server kept refusing it, its request timed out before it was sent, or the client closed. */
export type DropReason = 'queue_full' | 'rate_limited' | 'timeout' | 'closed'

/** Data of the `drop` event: a message the client accepted and never got handled. */
export interface DropInfo {
  reason: DropReason
  /** the envelope as it was sent or queued */
  message: OutgoingEnvelope
}

/** Data of the `resync` event: the room's history was lost; reload what the app shows of it. */
export interface ResyncInfo {
  room: string
}

/** Data of the `kicked` event: the server took the connection out of `room` (`FORBIDDEN` after a token refresh, `LEFT` from server code). */
export interface KickedInfo {
  room: string
  code: string
}

/** Client connection state. */
export type ClientState = 'connecting' | 'open' | 'reconnecting' | 'closed'

export interface ClientErrorLike extends Error {
  code: string
  statusCode?: number
  details?: unknown[]
  failures?: number
}

/** Events the client itself emits; the data passed to listeners of each. */
export interface LifecycleEvents {
  open: undefined
  close: CloseInfo
  reconnecting: ReconnectInfo
  /** the envelope given up; the listener's second argument carries the `reason` */
  drop: OutgoingEnvelope
  error: ClientErrorLike
  resync: ResyncInfo
  kicked: KickedInfo
}

/** Data type of event or message `K`: lifecycle events, `presence`, then the app's incoming types. */
export type EventData<In, K extends string> =
  K extends keyof LifecycleEvents ? LifecycleEvents[K]
    : K extends 'presence' ? PresenceEvent
      : K extends keyof In ? In[K]
        : unknown

/** `fn(data, message)`: the payload first, the whole envelope second. */
export type Listener<T> = (data: T, message: Envelope<T>) => void

type HandlerData<D> = D extends { handler: (conn: any, data: infer P, ...rest: any[]) => any } ? P : unknown
type HandlerResult<D> = D extends { handler: (...args: any[]) => infer R } ? Awaited<R> : unknown
type MessagesOf<R> = R extends { path: string, messages?: infer M } ? NonNullable<M> : never

/**
 * Outgoing payload types: from a server route definition (`typeof chatRoute`,
 * each handler's `data`), or a plain `{ type: payload }` map as it is.
 */
export type OutgoingOf<R> = [MessagesOf<R>] extends [never]
  ? R
  : { [K in keyof MessagesOf<R> & string]: HandlerData<MessagesOf<R>[K]> }

/** Ack data types: each handler's (awaited) return type; `any` for a plain map. */
export type AcksOf<R> = [MessagesOf<R>] extends [never]
  ? { [K in keyof R]: any }
  : { [K in keyof MessagesOf<R> & string]: HandlerResult<MessagesOf<R>[K]> }

/** A standard (browser) WebSocket constructor, or anything shaped like one. */
export interface WebSocketConstructorLike {
  new (url: string, protocols?: string | string[]): StandardSocketLike
}

/** The part of the standard WebSocket interface the client uses. */
export interface StandardSocketLike {
  readonly readyState: number
  onopen: ((event: any) => void) | null
  onmessage: ((event: { data: any }) => void) | null
  onclose: ((event: { code: number, reason: string }) => void) | null
  onerror: ((event: any) => void) | null
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
}

export interface ReconnectOptions {
  /** [500] ms; the first retry waits up to `base`, then up to `base * 2^n`. */
  base?: number
  /** [5000] ms; no wait is longer. */
  cap?: number
  /** [Infinity] retries since the link was last healthy before the client gives up. */
  maxRetries?: number
  /** [5000] ms a connection must stay open before the backoff starts again from `base`. */
  resetAfter?: number
  /**
   * [10 with a fixed `token`, Infinity with `getToken`] connection attempts in a
   * row that fail before opening, after which the client stops (`CONNECT_FAILED`
   * with `failures`). A browser cannot tell a refused upgrade (401, 403) from a
   * network error; this keeps a bad fixed token from retrying forever.
   * HTTP 503 and 429 answers seen in Node are not counted. `Infinity` turns it off.
   */
  maxConnectFailures?: number
  /** [Math.random] a number in [0, 1); inject it to make the jitter deterministic. */
  random?: () => number
}

export interface HeartbeatOptions {
  /** [25000] ms between app-level pings. */
  interval?: number
  /** [10000] ms to wait for the pong before the link counts as dead. */
  timeout?: number
}

export interface QueueOptions {
  /** [1000] app messages kept while offline or waiting for the pace; past it the oldest is dropped (`drop`, `queue_full`). */
  max?: number
}

export interface RateLimitOptions {
  /** [50] frames at most in any `windowMs` span; keep it well under the server's `rateLimit.max` (100). */
  max?: number
  /** [1000] ms; the server's `rateLimit.windowMs`. */
  windowMs?: number
  /** [3] times a message the server refused with `RATE_LIMITED` is sent again (after `windowMs`, then twice that, ...) before it is dropped. */
  retries?: number
}

export type TokenSource = () => string | undefined | null | Promise<string | undefined | null>

/** Options of `createClient` (SPEC section 8). */
export interface ClientOptions {
  /** A fixed token. In browsers it travels as the `bearer, <jwt>` subprotocol pair, in Node (`ws`) as `Authorization: Bearer`. */
  token?: string
  /** Called afresh before every connection attempt; wins over `token`. */
  getToken?: TokenSource
  /** Rooms to join on every connection (kept with those joined later). */
  rooms?: readonly string[]
  /** [{ base: 500, cap: 5000, maxRetries: Infinity, resetAfter: 5000 }] backoff with full jitter; false: never reconnect. */
  reconnect?: ReconnectOptions | false
  /** [{ interval: 25000, timeout: 10000 }] app-level ping; false turns it off. */
  heartbeat?: HeartbeatOptions | false
  /** [{ max: 1000 }] the queue of messages waiting to be sent. */
  queue?: QueueOptions
  /** [{ max: 50, windowMs: 1000, retries: 3 }] the client's own pace, under the server's rate limit. */
  rateLimit?: RateLimitOptions
  /** [10000] ms a `request` or `join` waits for its ack by default. */
  requestTimeout?: number
  /** A standard WebSocket constructor to use instead of the global one (or of `ws` in Node). */
  WebSocket?: WebSocketConstructorLike
  /** Options for the `ws` constructor, used only when the client falls back to `ws` in Node (e.g. `{ rejectUnauthorized: false }`). */
  wsOptions?: Record<string, unknown>
}

/** Options of `request`. */
export interface RequestOptions {
  room?: string
  /** ms; defaults to the client's `requestTimeout`. */
  timeout?: number
}
