import createError from '@fastify/error'

/** Registration and handshake errors: thrown by `register`, or answered as HTTP before the upgrade. */
export const errors = {
  FST_REALTIME_INVALID_OPTION: createError('FST_REALTIME_INVALID_OPTION', 'fastify-realtime: option "%s" %s', 500, TypeError),
  FST_REALTIME_INVALID_ROUTE: createError('FST_REALTIME_INVALID_ROUTE', 'fastify-realtime: route %s: %s', 500, TypeError),
  FST_REALTIME_JWT_MISSING: createError('FST_REALTIME_JWT_MISSING', 'fastify-realtime: auth is required but request.jwtVerify is missing; register @fastify/jwt before fastify-realtime, or set auth.required to false'),
  FST_REALTIME_ROUTE_AFTER_READY: createError('FST_REALTIME_ROUTE_AFTER_READY', 'fastify-realtime: route %s added after the server was ready'),
  FST_REALTIME_UNAUTHORIZED: createError('FST_REALTIME_UNAUTHORIZED', 'Authorization token is missing or invalid', 401),
  FST_REALTIME_ORIGIN_FORBIDDEN: createError('FST_REALTIME_ORIGIN_FORBIDDEN', 'Origin is not allowed', 403),
  FST_REALTIME_USER_LIMIT: createError('FST_REALTIME_USER_LIMIT', 'Too many connections for this user', 429),
  FST_REALTIME_UNAVAILABLE: createError('FST_REALTIME_UNAVAILABLE', 'Server is at its connection limit or shutting down', 503)
} as const

/** Codes of the `error` envelope sent to clients (SPEC section 5). */
export const ErrorCode = {
  BAD_JSON: 'BAD_JSON',
  INVALID_ENVELOPE: 'INVALID_ENVELOPE',
  UNKNOWN_TYPE: 'UNKNOWN_TYPE',
  INVALID_MESSAGE: 'INVALID_MESSAGE',
  FORBIDDEN: 'FORBIDDEN',
  NOT_IN_ROOM: 'NOT_IN_ROOM',
  TOO_MANY_ROOMS: 'TOO_MANY_ROOMS',
  INVALID_ROOM: 'INVALID_ROOM',
  RATE_LIMITED: 'RATE_LIMITED',
  HANDLER_ERROR: 'HANDLER_ERROR'
} as const
// eslint-disable-next-line @typescript-eslint/no-redeclare -- the value's type, under the same name
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode]

/** Default message sent with each wire error code. */
export const errorMessages: Record<ErrorCode, string> = {
  BAD_JSON: 'Message is not valid JSON',
  INVALID_ENVELOPE: 'Message must be an object { type, room?, data?, id? }',
  UNKNOWN_TYPE: 'Unknown message type',
  INVALID_MESSAGE: 'Message data does not match its schema',
  FORBIDDEN: 'Not allowed to join this room',
  NOT_IN_ROOM: 'Not a member of this room',
  TOO_MANY_ROOMS: 'Too many rooms for this connection',
  INVALID_ROOM: 'Room names are 1 to 128 characters with no control characters',
  RATE_LIMITED: 'Too many messages; slow down',
  HANDLER_ERROR: 'The handler failed'
}

/** Close codes the server sends (SPEC section 5). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  TOKEN_INVALID: 4401,
  KICKED: 4403,
  RATE_LIMITED: 4429
} as const
// eslint-disable-next-line @typescript-eslint/no-redeclare -- the value's type, under the same name
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]

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
