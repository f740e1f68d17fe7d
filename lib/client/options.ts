import type { Backoff } from './backoff.js'
import type { ClientOptions, TokenSource, WebSocketConstructorLike } from './types.js'

/** Client options after defaults. */
export interface Settings {
  getToken: TokenSource | undefined
  token: string | undefined
  reconnect: (Backoff & { maxRetries: number, resetAfter: number, maxConnectFailures: number }) | false
  heartbeat: { interval: number, timeout: number } | false
  queueMax: number
  /** frames per sliding window, and RATE_LIMITED retries */
  rateLimit: { max: number, windowMs: number, retries: number }
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
  const rateLimit = object('rateLimit', options.rateLimit) || {}
  for (const gone of ['flushBatch', 'flushInterval'] as const) {
    if ((queue as Record<string, unknown>)[gone] !== undefined) throw new TypeError(`fastify-realtime client: option "queue.${gone}" was replaced by "rateLimit" ({ max, windowMs }): the client paces every frame`)
  }
  let backoff: Settings['reconnect'] = false
  if (reconnect !== false) {
    const base = positive('reconnect.base', reconnect?.base, 500)
    const cap = positive('reconnect.cap', reconnect?.cap, 5000)
    if (cap < base) throw new TypeError('fastify-realtime client: option "reconnect.cap" must not be less than reconnect.base')
    const random = reconnect?.random ?? Math.random
    if (typeof random !== 'function') throw new TypeError('fastify-realtime client: option "reconnect.random" must be a function')
    backoff = {
      base,
      cap,
      random,
      maxRetries: positive('reconnect.maxRetries', reconnect?.maxRetries, Infinity, true),
      resetAfter: positive('reconnect.resetAfter', reconnect?.resetAfter, 5000, true),
      // a browser sees a refused upgrade as a network error: a fixed token would be retried forever
      maxConnectFailures: positive('reconnect.maxConnectFailures', reconnect?.maxConnectFailures, getToken === undefined ? 10 : Infinity)
    }
  }
  return {
    token,
    getToken,
    reconnect: backoff,
    heartbeat: heartbeat === false
      ? false
      : { interval: positive('heartbeat.interval', heartbeat?.interval, 25_000), timeout: positive('heartbeat.timeout', heartbeat?.timeout, 10_000) },
    queueMax: Math.floor(positive('queue.max', queue.max, 1000, true)),
    rateLimit: {
      max: Math.max(1, Math.floor(positive('rateLimit.max', rateLimit.max, 50))),
      windowMs: positive('rateLimit.windowMs', rateLimit.windowMs, 1000),
      retries: Math.floor(positive('rateLimit.retries', rateLimit.retries, 3, true))
    },
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
