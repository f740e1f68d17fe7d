import type { Backoff } from './backoff.js'
import type { ClientOptions, TokenSource, WebSocketConstructorLike } from './types.js'

/** Client options after defaults. */
export interface Settings {
  getToken: TokenSource | undefined
  token: string | undefined
  reconnect: (Backoff & { maxRetries: number }) | false
  heartbeat: { interval: number, timeout: number } | false
  queueMax: number
  /** queued messages sent per step after a reconnect, and ms between steps: under the server's rate limit */
  queueFlushBatch: number
  queueFlushInterval: number
  requestTimeout: number
  WebSocket: WebSocketConstructorLike | undefined
  wsOptions: Record<string, unknown>
}

function positive (name: string, value: unknown, fallback: number, allowZero = false): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0 || (!allowZero && value === 0)) {
    throw new TypeError(`fastify-realtime client: option "${name}" must be a ${allowZero ? 'non-negative' : 'positive'} number`)
  }
  return value
}

function object<T> (name: string, value: T | false | undefined): T | false | undefined {
  if (value === undefined || value === false || (typeof value === 'object' && value !== null)) return value
  throw new TypeError(`fastify-realtime client: option "${name}" must be an object or false`)
}

/** Defaults first, then the checks that name the bad option. */
export function resolveSettings (options: ClientOptions): Settings {
  const { token, getToken } = options
  if (token !== undefined && (typeof token !== 'string' || token === '')) throw new TypeError('fastify-realtime client: option "token" must be a non-empty string')
  if (getToken !== undefined && typeof getToken !== 'function') throw new TypeError('fastify-realtime client: option "getToken" must be a function')
  const reconnect = object('reconnect', options.reconnect)
  const heartbeat = object('heartbeat', options.heartbeat)
  const queue = object('queue', options.queue) || {}
  let backoff: Settings['reconnect'] = false
  if (reconnect !== false) {
    const base = positive('reconnect.base', reconnect?.base, 500)
    const cap = positive('reconnect.cap', reconnect?.cap, 30_000)
    if (cap < base) throw new TypeError('fastify-realtime client: option "reconnect.cap" must not be less than reconnect.base')
    const random = reconnect?.random ?? Math.random
    if (typeof random !== 'function') throw new TypeError('fastify-realtime client: option "reconnect.random" must be a function')
    backoff = { base, cap, random, maxRetries: positive('reconnect.maxRetries', reconnect?.maxRetries, Infinity, true) }
  }
  return {
    token,
    getToken,
    reconnect: backoff,
    heartbeat: heartbeat === false
      ? false
      : { interval: positive('heartbeat.interval', heartbeat?.interval, 25_000), timeout: positive('heartbeat.timeout', heartbeat?.timeout, 10_000) },
    queueMax: Math.floor(positive('queue.max', queue.max, 1000, true)),
    queueFlushBatch: Math.floor(positive('queue.flushBatch', queue.flushBatch, 50)) || 1,
    queueFlushInterval: positive('queue.flushInterval', queue.flushInterval, 1000, true),
    requestTimeout: positive('requestTimeout', options.requestTimeout, 10_000),
    WebSocket: options.WebSocket,
    wsOptions: options.wsOptions ?? {}
  }
}

/** `ws:`/`wss:` as given; `http(s):` mapped; a path resolved against the page in browsers. */
export function resolveUrl (url: string | URL): string {
  const base = typeof location === 'undefined' ? undefined : location.href
  const resolved = new URL(String(url), base)
  if (resolved.protocol === 'http:') resolved.protocol = 'ws:'
  else if (resolved.protocol === 'https:') resolved.protocol = 'wss:'
  if (resolved.protocol !== 'ws:' && resolved.protocol !== 'wss:') throw new TypeError(`fastify-realtime client: unsupported url protocol ${resolved.protocol}`)
  return resolved.href
}
