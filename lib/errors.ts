import createError from '@fastify/error'
import { ErrorCode } from './protocol.js'

/**
 * Every error the plugin throws, one table (docs/errors.md lists them all).
 * Registration errors fail `register`; the 4xx/5xx ones are the HTTP answers
 * to refused upgrades; the TypeErrors are thrown at the call that misused an API.
 */
export const errors = {
  FST_REALTIME_INVALID_OPTION: createError('FST_REALTIME_INVALID_OPTION', 'fastify-realtime: option "%s" %s', 500, TypeError),
  FST_REALTIME_INVALID_ROUTE: createError('FST_REALTIME_INVALID_ROUTE', 'fastify-realtime: route %s: %s', 500, TypeError),
  FST_REALTIME_JWT_MISSING: createError('FST_REALTIME_JWT_MISSING', 'fastify-realtime: auth is required but request.jwtVerify is missing; register @fastify/jwt before fastify-realtime, or set auth.required to false'),
  FST_REALTIME_ROUTE_AFTER_READY: createError('FST_REALTIME_ROUTE_AFTER_READY', 'fastify-realtime: route %s added after the server was ready'),
  FST_REALTIME_MISSING_PEER: createError('FST_REALTIME_MISSING_PEER', 'fastify-realtime: %s needs the optional peer dependency "%s"; install it next to fastify-realtime (npm install it)'),
  FST_REALTIME_METRIC_EXISTS: createError('FST_REALTIME_METRIC_EXISTS', 'fastify-realtime: the metrics registry already has a metric named "%s" that fastify-realtime did not register; give the plugin another registry or metrics.prefix'),
  FST_REALTIME_ADAPTER_IN_USE: createError('FST_REALTIME_ADAPTER_IN_USE', 'fastify-realtime: this %s adapter already serves an app; create one adapter per app'),
  FST_REALTIME_ADAPTER_UNAVAILABLE: createError('FST_REALTIME_ADAPTER_UNAVAILABLE', 'fastify-realtime: cannot connect to %s: %s'),
  FST_REALTIME_INVALID_ROOM: createError('FST_REALTIME_INVALID_ROOM', 'fastify-realtime: %s is not a valid room name (1 to 128 characters of well-formed text, no control or bidirectional-control characters)', 500, TypeError),
  FST_REALTIME_NO_HISTORY: createError('FST_REALTIME_NO_HISTORY', 'fastify-realtime: room %s keeps no history (see the history option and its rooms predicate)', 500, TypeError),
  FST_REALTIME_INVALID_HISTORY_QUERY: createError('FST_REALTIME_INVALID_HISTORY_QUERY', 'fastify-realtime: history() option "%s" %s', 500, TypeError),
  FST_REALTIME_INVALID_CLOSE_CODE: createError('FST_REALTIME_INVALID_CLOSE_CODE', 'fastify-realtime: %s is not a close code a server may send (1000-1014 but 1004-1006, or 3000-4999)', 500, TypeError),
  FST_REALTIME_UNAUTHORIZED: createError('FST_REALTIME_UNAUTHORIZED', 'Authorization token is missing or invalid', 401),
  FST_REALTIME_ORIGIN_FORBIDDEN: createError('FST_REALTIME_ORIGIN_FORBIDDEN', 'Origin is not allowed', 403),
  FST_REALTIME_USER_LIMIT: createError('FST_REALTIME_USER_LIMIT', 'Too many connections for this user', 429),
  FST_REALTIME_UNAVAILABLE: createError('FST_REALTIME_UNAVAILABLE', 'Server is at its connection limit or shutting down', 503)
} as const

const kRealtimeError = Symbol.for('fastify-realtime.RealtimeError')

/**
 * A deliberate error from a message handler: its message (and code, if given)
 * reaches the client; any other thrown error is logged and sent as a bare HANDLER_ERROR.
 * @example
 * throw new RealtimeError('room is full', { code: 'ROOM_FULL' })
 */
export class RealtimeError extends Error {
  readonly code: string
  readonly details?: unknown[]
  constructor (message: string, opts: { code?: string, details?: unknown[] } = {}) {
    super(message)
    this.name = 'RealtimeError'
    this.code = opts.code ?? ErrorCode.HANDLER_ERROR
    this.details = opts.details
    Object.defineProperty(this, kRealtimeError, { value: true })
  }

  // `instanceof` holds across copies of the class (an app mixing the ESM and CJS builds).
  static override [Symbol.hasInstance] (value: unknown): boolean {
    return (value as Record<symbol, unknown> | null)?.[kRealtimeError] === true
  }
}
