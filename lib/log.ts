import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify'

function decodeKey (key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' ')).toLowerCase()
  } catch {
    return key.toLowerCase()
  }
}

/**
 * `url` with the value of every `token` query parameter replaced, for logs.
 * Keys are compared decoded, as the query parser reads them (`?%74oken=` is `token`).
 */
export function redactUrl (url: string): string {
  const start = url.indexOf('?')
  if (start === -1) return url
  const pairs = url.slice(start + 1).split('&')
  for (let i = 0; i < pairs.length; i++) {
    const eq = pairs[i].indexOf('=')
    const key = eq === -1 ? pairs[i] : pairs[i].slice(0, eq)
    if (decodeKey(key) === 'token') pairs[i] = `${key}=[REDACTED]`
  }
  return `${url.slice(0, start + 1)}${pairs.join('&')}`
}

/** What a request serializer may be handed: a Fastify request, or a raw IncomingMessage. */
export interface LoggedRequest {
  method?: string
  url?: string
  headers?: IncomingHttpHeaders
  /** Fastify's request: the Host (or X-Forwarded-Host under trustProxy) and the client address */
  host?: string
  ip?: string
  socket?: { remoteAddress?: string, remotePort?: number } | null
  raw?: { socket?: { remoteAddress?: string, remotePort?: number } | null }
}

/** The fields of Fastify's default request serializer (the index signature is what its logger options ask for). */
export interface RequestLogFields {
  [field: string]: unknown
  method?: string
  url?: string
  version?: string
  host?: string
  remoteAddress?: string
  remotePort?: number
}

/**
 * Fastify's request serializer with the `token` query parameter redacted: a
 * drop-in for the app's logger, so no route's request log (404s, `/chat/`,
 * other routes) carries a JWT sent as `?token=`.
 * @example
 * import { requestSerializer } from 'fastify-realtime'
 * const app = Fastify({ logger: { level: 'info', serializers: { req: requestSerializer } } })
 */
export function redactedRequest (request: LoggedRequest): RequestLogFields {
  const socket = request.socket ?? request.raw?.socket
  const fields: RequestLogFields = {
    method: request.method,
    url: typeof request.url === 'string' ? redactUrl(request.url) : request.url,
    host: request.host ?? request.headers?.host,
    remoteAddress: request.ip ?? socket?.remoteAddress,
    remotePort: socket?.remotePort
  }
  const version = request.headers?.['accept-version']
  if (version !== undefined) fields.version = version as string
  return fields
}

/**
 * Root `preHandler` hook: a request Fastify's not-found handler answers (no
 * route matched, or a route called `reply.callNotFound()`, as @fastify/static
 * does) gets a log line and a reply that spell out the raw URL. The hook runs
 * again in the not-found context; the query was parsed already, so only the
 * text is redacted.
 */
export function redactNotFound (request: FastifyRequest, _reply: FastifyReply, done: HookHandlerDoneFunction): void {
  if (request.is404) {
    const url = request.raw.url
    if (url !== undefined && url.includes('?')) {
      const redacted = redactUrl(url)
      if (redacted !== url) request.raw.url = redacted
    }
  }
  done()
}

/** pino keeps a logger's serializers under this (public) symbol: `pino.symbols.serializersSym`. */
const kPinoSerializers = Symbol.for('pino.serializers')
const PROBE = 'fastify-realtime-token-probe'

/**
 * Whether the request serializer of `log` writes a `?token=` as it is: true or
 * false, or undefined when it cannot be told (not a pino logger, or its
 * serializer fails on a made-up request). Runs the serializer once on a made-up request.
 */
export function printsQueryToken (log: unknown): boolean | undefined {
  const serializers = (log as Record<symbol, Record<string, unknown> | undefined> | null)?.[kPinoSerializers]
  const serialize = serializers?.req
  if (typeof serialize !== 'function') return undefined
  const url = `/chat?token=${PROBE}`
  const socket = { remoteAddress: '127.0.0.1', remotePort: 1 }
  const raw = { method: 'GET', url, headers: { host: 'localhost' }, socket }
  const request = { ...raw, raw, id: 'req-probe', host: 'localhost', hostname: 'localhost', ip: '127.0.0.1', query: { token: PROBE } }
  try {
    return JSON.stringify(serialize(request) ?? null).includes(PROBE)
  } catch {
    return undefined
  }
}

/** What the startup check reads of the app. */
export interface LoggingApp {
  log: unknown
  initialConfig: { disableRequestLogging?: unknown }
}

/**
 * Warn once, at register, when the app's logger would write a `?token=` JWT
 * into its request log lines (its `req` serializer is Fastify's default, or
 * another one that prints the raw query). Silent when that cannot be told.
 */
export function warnIfQueryTokensLogged (app: LoggingApp, readsQueryToken: boolean): boolean {
  if (!readsQueryToken || app.initialConfig.disableRequestLogging === true) return false
  const log = app.log as { isLevelEnabled?: (level: string) => boolean, warn?: (msg: string) => void }
  if (typeof log.isLevelEnabled === 'function' && !log.isLevelEnabled('info')) return false
  if (printsQueryToken(log) !== true || typeof log.warn !== 'function') return false
  log.warn('fastify-realtime: the app\'s logger writes request URLs as they are, so a JWT sent as ?token= reaches the request log ' +
    'of any request that misses a realtime route (/chat/, other routes); add the plugin\'s request serializer to the logger options: ' +
    "import { requestSerializer } from 'fastify-realtime'; Fastify({ logger: { serializers: { req: requestSerializer } } })")
  return true
}
