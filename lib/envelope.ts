import { Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import { errors } from './errors.js'
import type { IncomingEnvelope } from './protocol.js'

/** Longest room name; longer ones get INVALID_ROOM. */
export const MAX_ROOM_LENGTH = 128

/** Message ids: a string of up to 128 characters, or a number. */
export const IdSchema = Type.Union([Type.String({ maxLength: 128 }), Type.Number()])

/**
 * The one shape every incoming message has (SPEC section 5). `room` is checked
 * by the dispatcher against RoomSchema, so a bad room of any type is INVALID_ROOM.
 */
export const EnvelopeSchema = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 128 }),
  room: Type.Optional(Type.Unknown()),
  data: Type.Optional(Type.Unknown()),
  id: Type.Optional(IdSchema)
}, { additionalProperties: false })

/**
 * Room names: 1 to 128 characters of well-formed UTF-16 (a lone surrogate would
 * turn into U+FFFD on the way through Redis and reach another room), none of them
 * a control character or a bidirectional control (U+202A-U+202E, U+2066-U+2069)
 * that could make a UI show another name.
 */
export const RoomSchema = Type.String({
  minLength: 1,
  maxLength: MAX_ROOM_LENGTH,
  pattern: '^(?:[^\\u0000-\\u001f\\u007f-\\u009f\\u202a-\\u202e\\u2066-\\u2069\\ud800-\\udfff]|[\\ud800-\\udbff][\\udc00-\\udfff])*$'
})

/**
 * A join's `data` (SPEC section 10): exactly one of `since` (resume after an
 * offset of an epoch) or `history` (the last n kept messages).
 */
export const JoinDataSchema = Type.Object({
  since: Type.Optional(Type.Object({
    offset: Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER }),
    epoch: Type.String({ minLength: 1, maxLength: 64 })
  }, { additionalProperties: false })),
  history: Type.Optional(Type.Integer({ minimum: 1, maximum: 10_000 }))
}, { additionalProperties: false, minProperties: 1, maxProperties: 1 })

export const joinDataCheck: TypeCheck<typeof JoinDataSchema> = TypeCompiler.Compile(JoinDataSchema)
export const envelopeCheck: TypeCheck<typeof EnvelopeSchema> = TypeCompiler.Compile(EnvelopeSchema)
export const roomCheck: TypeCheck<typeof RoomSchema> = TypeCompiler.Compile(RoomSchema)
const idCheck: TypeCheck<typeof IdSchema> = TypeCompiler.Compile(IdSchema)

/** Compile a route's message schema once, at registration. */
export function compileSchema<S extends TSchema> (schema: S): TypeCheck<S> {
  return TypeCompiler.Compile(schema)
}

/** Whether `room` is a valid room name. */
export function isValidRoom (room: unknown): room is string {
  return roomCheck.Check(room)
}

/** Throw the coded TypeError for a room name that is not valid (never publish a room named `undefined`). */
export function assertRoom (room: unknown): asserts room is string {
  if (!isValidRoom(room)) throw new errors.FST_REALTIME_INVALID_ROOM(typeof room === 'string' ? JSON.stringify(room.slice(0, 140)) : String(room))
}

/** Longest `details` path sent back; a client's own long keys are not repeated in full. */
export const MAX_DETAIL_PATH = 256
/** Largest error envelope the server sends: a bad message never draws a bigger reply. */
export const MAX_ERROR_BYTES = 8 * 1024

export interface Detail { path: string, message: string }

/**
 * `details` of INVALID_MESSAGE: each failing path (cut to 256 characters) with
 * its message; `check` is a compiled schema of either TypeBox (lib/schema.ts).
 */
export function schemaErrors (check: { Errors (value: unknown): Iterable<{ path: string, message: string }> }, value: unknown, limit = 20): Detail[] {
  const details: Detail[] = []
  for (const error of check.Errors(value)) {
    const path = error.path === '' ? '/' : error.path
    details.push({ path: path.length > MAX_DETAIL_PATH ? path.slice(0, MAX_DETAIL_PATH) : path, message: error.message })
    if (details.length >= limit) break
  }
  return details
}

export type ParseResult =
  | { ok: true, envelope: IncomingEnvelope }
  | { ok: false, code: 'BAD_JSON' | 'INVALID_ENVELOPE', id?: string | number }

/** Parse and shape-check one text frame. */
export function parseEnvelope (text: string): ParseResult {
  let value: unknown
  try {
    value = JSON.parse(text)
  } catch {
    return { ok: false, code: 'BAD_JSON' }
  }
  if (envelopeCheck.Check(value)) return { ok: true, envelope: value as IncomingEnvelope }
  // echo the id only when it is a valid one: an invalid envelope must not make the server repeat 64 KiB back
  const id = (value as { id?: unknown } | null)?.id
  return { ok: false, code: 'INVALID_ENVELOPE', id: idCheck.Check(id) ? id : undefined }
}

/** Serialise an outgoing envelope once; the string is what every recipient gets. */
export function serialize (type: string, data: unknown, room?: string): string {
  return serializeBody(type, data, room) + '}'
}

/** An envelope without its closing brace, for a history store to add the offset to. */
export function serializeBody (type: string, data: unknown, room?: string): string {
  let out = '{"type":' + JSON.stringify(type)
  if (room !== undefined) out += ',"room":' + JSON.stringify(room)
  if (data !== undefined) out += ',"data":' + JSON.stringify(data)
  return out
}

/** An `ack` envelope for a message that carried an id. */
export function serializeAck (id: string | number, data: unknown): string {
  let out = '{"type":"ack","id":' + JSON.stringify(id)
  if (data !== undefined) out += ',"data":' + JSON.stringify(data)
  return out + '}'
}

/**
 * An `error` envelope of at most MAX_ERROR_BYTES: `details` is shortened from
 * the end until it fits (and dropped if even one does not), the message cut last.
 */
export function serializeError (code: string, message: string, id?: string | number, details?: unknown[]): string {
  let out = '{"type":"error"'
  if (id !== undefined) out += ',"id":' + JSON.stringify(id)
  out += ',"code":' + JSON.stringify(code) + ',"message":'
  let text = JSON.stringify(message)
  if (out.length + text.length > MAX_ERROR_BYTES / 2) text = JSON.stringify(message.slice(0, 1024))
  out += text
  if (details !== undefined && details.length > 0) {
    let list = JSON.stringify(details)
    let count = details.length
    // lengths in UTF-16 units bound UTF-8 bytes within 3x; measure the real bytes only near the limit
    while (count > 0 && Buffer.byteLength(out) + Buffer.byteLength(list) + 13 > MAX_ERROR_BYTES) {
      count = Math.floor(count / 2)
      list = JSON.stringify(details.slice(0, count))
    }
    if (count > 0) out += ',"details":' + list
  }
  return out + '}'
}

export const PONG = '{"type":"pong"}'
