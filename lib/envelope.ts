import { Type, type TSchema } from '@sinclair/typebox'
import { TypeCompiler, type TypeCheck } from '@sinclair/typebox/compiler'
import type { IncomingEnvelope } from './types.js'

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

/** Room names: 1 to 128 characters, none of them a control character. */
export const RoomSchema = Type.String({ minLength: 1, maxLength: MAX_ROOM_LENGTH, pattern: '^[^\\u0000-\\u001f\\u007f-\\u009f]*$' })

export const envelopeCheck: TypeCheck<typeof EnvelopeSchema> = TypeCompiler.Compile(EnvelopeSchema)
export const roomCheck: TypeCheck<typeof RoomSchema> = TypeCompiler.Compile(RoomSchema)
const idCheck: TypeCheck<typeof IdSchema> = TypeCompiler.Compile(IdSchema)

/** Compile a route's message schema once, at registration. */
export function compileSchema<S extends TSchema> (schema: S): TypeCheck<S> {
  return TypeCompiler.Compile(schema)
}

/** `details` of INVALID_MESSAGE: each failing path with its message. */
export function schemaErrors (check: TypeCheck<TSchema>, value: unknown, limit = 20): Array<{ path: string, message: string }> {
  const details: Array<{ path: string, message: string }> = []
  for (const error of check.Errors(value)) {
    details.push({ path: error.path === '' ? '/' : error.path, message: error.message })
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
  let out = '{"type":' + JSON.stringify(type)
  if (room !== undefined) out += ',"room":' + JSON.stringify(room)
  if (data !== undefined) out += ',"data":' + JSON.stringify(data)
  return out + '}'
}

/** An `ack` envelope for a message that carried an id. */
export function serializeAck (id: string | number, data: unknown): string {
  let out = '{"type":"ack","id":' + JSON.stringify(id)
  if (data !== undefined) out += ',"data":' + JSON.stringify(data)
  return out + '}'
}

/** An `error` envelope. */
export function serializeError (code: string, message: string, id?: string | number, details?: unknown[]): string {
  let out = '{"type":"error"'
  if (id !== undefined) out += ',"id":' + JSON.stringify(id)
  out += ',"code":' + JSON.stringify(code) + ',"message":' + JSON.stringify(message)
  if (details !== undefined) out += ',"details":' + JSON.stringify(details)
  return out + '}'
}

export const PONG = '{"type":"pong"}'
