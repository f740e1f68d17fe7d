// The protocol's own messages as JSON Schema, for the AsyncAPI document
// (lib/asyncapi.ts): envelopes, the reserved types, error and close codes.
import { IdSchema, RoomSchema } from './envelope.js'
import { CloseCode, ErrorCode, errorMessages, KickCode } from './protocol.js'
import { jsonSchemaOf } from './schema.js'

export type JsonSchema = Record<string, unknown>

/** What each close code means (docs/protocol.md). */
export const closeCodeMeanings: Record<CloseCode, string> = {
  1000: 'normal closure',
  1001: 'server shutting down (app.close())',
  1002: 'protocol error (malformed frame)',
  1003: 'binary frame: only JSON text is accepted',
  1007: 'invalid UTF-8 in a text frame',
  1009: 'message over maxPayload',
  1011: 'internal error (for example onConnect failed)',
  1012: 'service restart (drain): the reason is `retry <ms>`, the longest to wait before reconnecting',
  1013: 'slow consumer: over maxBufferedBytes unsent',
  4401: 'token expired or invalid (also a bad auth refresh)',
  4403: 'kicked by the server',
  4429: 'rate limit kept being exceeded'
}

/** Schemas every envelope uses, kept once in `components.schemas`. */
export const sharedSchemas: Record<string, JsonSchema> = {
  room: { ...jsonSchemaOf(RoomSchema), description: 'A room name: 1 to 128 characters of well-formed text, no control or bidirectional-control characters.' },
  id: { ...jsonSchemaOf(IdSchema), description: 'Chosen by the client; the ack or error that answers the message carries it.' }
}
export const room: JsonSchema = { $ref: '#/components/schemas/room' }
export const id: JsonSchema = { $ref: '#/components/schemas/id' }

const member: JsonSchema = {
  type: 'object',
  properties: { id: { type: 'string', description: 'connection id' }, sub: { type: ['string', 'null'], description: "the JWT's sub, null for anonymous connections" } },
  required: ['id', 'sub']
}

/** `data` of a join: exactly one of `since` and `history` (delivery guarantees). */
export const joinData: JsonSchema = {
  description: 'Optional: what the room has kept to replay before the ack (rooms with history).',
  oneOf: [
    {
      type: 'object',
      properties: {
        since: {
          type: 'object',
          properties: { offset: { type: 'integer', minimum: 0 }, epoch: { type: 'string', minLength: 1, maxLength: 64 } },
          required: ['offset', 'epoch'],
          additionalProperties: false
        }
      },
      required: ['since'],
      additionalProperties: false
    },
    {
      type: 'object',
      properties: { history: { type: 'integer', minimum: 1, maximum: 10000 } },
      required: ['history'],
      additionalProperties: false
    }
  ]
}

export const joinAckData: JsonSchema = {
  type: 'object',
  properties: {
    room,
    members: { type: 'array', items: member, maxItems: 1000, description: 'with presence: true, the members on every instance (at most 1000)' },
    total: { type: 'integer', minimum: 0, description: 'with presence: true, how many members there are' },
    offset: { type: 'integer', minimum: 0, description: "in a room with history: the room's latest offset" },
    epoch: { type: 'string', description: "in a room with history: the history's epoch" },
    recovered: { type: 'boolean', description: 'after a join with since: whether every message after it was sent' }
  },
  required: ['room']
}

/** The envelope of one message: `type` fixed, the other fields as given. */
export function envelope (type: string, fields: Record<string, JsonSchema>, required: string[] = []): JsonSchema {
  return {
    type: 'object',
    properties: { type: { type: 'string', const: type }, ...fields },
    required: ['type', ...required],
    additionalProperties: false
  }
}

/** The `code` of an error envelope: a wire code, or an app's own from a RealtimeError. */
const errorCode: JsonSchema = {
  description: 'One of the protocol error codes, or a code of the app (a handler threw a RealtimeError with a code).',
  anyOf: [
    { type: 'string', enum: Object.values(ErrorCode) },
    { type: 'string' }
  ]
}

export const errorPayload: JsonSchema = envelope('error', {
  id,
  code: errorCode,
  message: { type: 'string' },
  details: {
    type: 'array',
    description: 'INVALID_MESSAGE: each failing path (a JSON pointer, "/" for the root) and what is wrong there; the whole envelope is at most 8 KiB.',
    items: { type: 'object', properties: { path: { type: 'string', maxLength: 256 }, message: { type: 'string' } }, required: ['path', 'message'] }
  }
}, ['code', 'message'])

export const presencePayload: JsonSchema = envelope('presence', {
  room,
  data: {
    type: 'object',
    properties: { event: { type: 'string', enum: ['join', 'leave'] }, member },
    required: ['event', 'member']
  }
}, ['room', 'data'])

export const kickedPayload: JsonSchema = envelope('kicked', {
  room,
  data: {
    type: 'object',
    properties: { code: { type: 'string', enum: Object.values(KickCode), description: 'FORBIDDEN: an auth refresh no longer passes canJoin; LEFT: server code called conn.leave' } },
    required: ['code']
  }
}, ['room', 'data'])

export const resyncPayload: JsonSchema = envelope('resync', {
  room,
  data: {
    type: 'object',
    properties: { epoch: { type: 'string' }, offset: { type: 'integer', minimum: 0 } },
    required: ['epoch', 'offset']
  }
}, ['room', 'data'])

/** `x-error-codes`: each wire error code with its default message. */
export const errorCodes: Record<string, string> = { ...errorMessages }

/** `x-close-codes`: each close code the server sends, with its meaning. */
export const closeCodes: Record<string, string> = Object.fromEntries(Object.entries(closeCodeMeanings))

/** The close codes as a Markdown table, for the channel's description. */
export function closeCodeTable (): string {
  const rows = Object.entries(closeCodeMeanings).map(([code, meaning]) => `| ${code} | ${meaning} |`)
  return ['| close code | meaning |', '|---|---|', ...rows].join('\n')
}

/** The error codes as a Markdown table, for the error message's description. */
export function errorCodeTable (): string {
  const rows = Object.entries(errorMessages).map(([code, message]) => `| ${code} | ${message} |`)
  return ['| error code | default message |', '|---|---|', ...rows].join('\n')
}

/** The three places a client may put its JWT (docs/auth.md). */
export const securitySchemes: Record<string, JsonSchema> = {
  jwtHeader: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: 'The upgrade request carries `Authorization: Bearer <jwt>` (servers, Node clients).'
  },
  jwtSubprotocol: {
    type: 'httpApiKey',
    in: 'header',
    name: 'Sec-WebSocket-Protocol',
    description: 'Browsers, which cannot set headers, offer the subprotocol pair `bearer, <jwt>`; the server answers with the `bearer` subprotocol.'
  },
  jwtQuery: {
    type: 'httpApiKey',
    in: 'query',
    name: 'token',
    description: 'The `token` query parameter (never written to logs); the last resort.'
  }
}

/** The WebSocket binding of a channel: the upgrade request and where a token may travel. */
export const channelBinding: JsonSchema = {
  method: 'GET',
  query: {
    type: 'object',
    properties: { token: { type: 'string', description: 'a JWT, when neither the Authorization header nor the bearer subprotocol carries one' } }
  },
  headers: {
    type: 'object',
    properties: {
      Authorization: { type: 'string', pattern: '^Bearer .+$', description: 'the word Bearer, a space, then the JWT' },
      'Sec-WebSocket-Protocol': { type: 'string', description: 'the subprotocol pair: bearer, then the JWT' }
    }
  },
  bindingVersion: '0.1.0'
}
