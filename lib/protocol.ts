// Wire constants and shapes of the protocol (SPEC sections 5, 10, 14): what a
// client and the server agree on. Imports nothing, so the client can use it too.

/** Codes of the `error` envelope sent to clients. */
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
  INVALID_ROOM: 'Room names are 1 to 128 characters of well-formed text with no control or bidirectional-control characters',
  RATE_LIMITED: 'Too many messages; slow down',
  HANDLER_ERROR: 'The handler failed'
}

/** Close codes the server sends. */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  PROTOCOL_ERROR: 1002,
  UNSUPPORTED_DATA: 1003,
  INVALID_PAYLOAD: 1007,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  TOKEN_INVALID: 4401,
  KICKED: 4403,
  RATE_LIMITED: 4429
} as const
// eslint-disable-next-line @typescript-eslint/no-redeclare -- the value's type, under the same name
export type CloseCode = typeof CloseCode[keyof typeof CloseCode]

/** Message types the protocol itself uses; routes cannot define them. */
export const RESERVED_TYPES: ReadonlySet<string> = new Set([
  'join', 'leave', 'ping', 'auth', 'ack', 'pong', 'error', 'presence', 'kicked', 'resync'
])

/** Codes of a `kicked` envelope's data. */
export const KickCode = {
  /** an `auth` refresh's token no longer passes the route's canJoin */
  FORBIDDEN: 'FORBIDDEN',
  /** server code called `conn.leave` */
  LEFT: 'LEFT'
} as const

/** One member of a room, on any instance. */
export interface Member {
  id: string
  sub: string | null
}

/** A parsed, validated incoming envelope. */
export interface IncomingEnvelope<D = unknown> {
  type: string
  room?: string
  data?: D
  id?: string | number
}

/** A close frame's reason holds at most 123 bytes of UTF-8. */
const MAX_REASON_BYTES = 123

/** The close codes an endpoint may send (RFC 6455 section 7.4, as ws checks them). */
export function isSendableCloseCode (code: unknown): code is number {
  return Number.isInteger(code) && (((code as number) >= 1000 && (code as number) <= 1014 &&
    code !== 1004 && code !== 1005 && code !== 1006) || ((code as number) >= 3000 && (code as number) <= 4999))
}

/** Cut `reason` to what a close frame holds, on a character boundary. */
export function closeReason (reason: string): string {
  if (byteLength(reason) <= MAX_REASON_BYTES) return reason
  let bytes = 0
  let end = 0
  for (const char of reason) {
    bytes += byteLength(char)
    if (bytes > MAX_REASON_BYTES) break
    end += char.length
  }
  return reason.slice(0, end)
}

/** UTF-8 length without Buffer, so the client can share this file. */
function byteLength (text: string): number {
  let bytes = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c < 0x80) bytes += 1
    else if (c < 0x800) bytes += 2
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      bytes += 4
      i++
    } else bytes += 3
  }
  return bytes
}
