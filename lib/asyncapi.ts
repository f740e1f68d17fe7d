// `app.realtime.asyncapi()`: an AsyncAPI 3.0.0 document of every route, from
// the server's point of view (what clients send it is `receive`, what it sends
// them is `send`). Each route is a channel; each message type, the protocol's
// own included, is a message of it with the whole envelope as its payload.
import {
  channelBinding, closeCodeTable, closeCodes, envelope, errorCodeTable, errorCodes, errorPayload, id, joinAckData,
  joinData, kickedPayload, presencePayload, resyncPayload, room, securitySchemes, sharedSchemas, type JsonSchema
} from './asyncapi-protocol.js'
import type { CompiledRoute, CompiledSchema } from './context.js'
import { jsonSchemaOf } from './schema.js'
import type { AsyncApiDocument, AsyncApiOptions } from './types.js'

export interface DescribeOptions {
  /** whether every connection needs a token */
  authRequired: boolean
  info: AsyncApiOptions['info']
}

interface Message {
  name: string
  title: string
  summary: string
  description?: string
  payload: JsonSchema
  correlationId?: { location: string }
  [extension: `x-${string}`]: unknown
}

type Ref = { $ref: string }

const BY_ID = { location: '$message.payload#/id' }

const PROTOCOL = 'Real-time rooms over WebSocket (fastify-realtime): JSON text frames, one envelope each; binary frames close the connection with 1003. ' +
  'Client to server: `{ type, room?, data?, id? }`; a message with an `id` is answered by an `ack` or an `error` with that id. ' +
  'Server to client: `{ type, room?, data?, offset? }`, `ack`, `error` (with a `code`).'

/** A key that AsyncAPI's component and id rules accept: letters, digits, `.`, `-`, `_`. */
function safeKey (name: string): string {
  const key = name.replace(/[^\w.-]/g, '_')
  return key === '' ? '_' : key
}

/** `name`, made unique among `taken`. */
function unique (name: string, taken: { has: (key: string) => boolean }): string {
  let key = safeKey(name)
  for (let n = 2; taken.has(key); n++) key = `${safeKey(name)}_${n}`
  return key
}

/** A JSON pointer segment. */
function segment (key: string): string {
  return key.replace(/~/g, '~0').replace(/\//g, '~1')
}

/** Whether a message of `compiled` may leave `data` out. */
function dataOptional (compiled: CompiledSchema): boolean {
  try {
    return compiled.check.Check(undefined)
  } catch {
    return false
  }
}

/** The envelope of an app message (`data` required unless its schema takes undefined). */
function appEnvelope (type: string, compiled: CompiledSchema, fields: Record<string, JsonSchema>): JsonSchema {
  return envelope(type, { ...fields, data: jsonSchemaOf(compiled.schema) }, dataOptional(compiled) ? [] : ['data'])
}

/** One channel (route) and its operations. */
class ChannelBuilder {
  readonly messages: Record<string, Message | Ref> = {}
  readonly operations: Record<string, Record<string, unknown>> = {}
  readonly #key: string
  readonly #security: Ref[] | undefined

  constructor (key: string, security: Ref[] | undefined) {
    this.#key = key
    this.#security = security
  }

  ref (messageKey: string): Ref {
    return { $ref: `#/channels/${segment(this.#key)}/messages/${segment(messageKey)}` }
  }

  /** Add a protocol message, kept in `components.messages`; returns its key in the channel. */
  shared (key: string): string {
    this.messages[key] = { $ref: `#/components/messages/${key}` }
    return key
  }

  /** Add a message; returns its key in the channel (the protocol's own keys stay theirs). */
  message (key: string, message: Message): string {
    const name = unique(key, { has: (k) => k in this.messages })
    this.messages[name] = message
    return name
  }

  /** An operation on this channel: `receive` (client to server, `reply` its answers) or `send`. */
  operation (name: string, action: 'receive' | 'send', summary: string, messages: string[], reply?: string[]): void {
    const key = unique(`${this.#key}.${action}.${name}`, { has: (k) => k in this.operations })
    const channel = { $ref: `#/channels/${segment(this.#key)}` }
    this.operations[key] = {
      action,
      channel,
      summary,
      messages: messages.map((m) => this.ref(m)),
      ...(reply === undefined ? {} : { reply: { channel, messages: reply.map((m) => this.ref(m)) } }),
      ...(this.#security === undefined ? {} : { security: this.#security })
    }
  }
}

/** The protocol's own messages: the same in every channel, so kept once in `components.messages`. */
function protocolMessages (): Record<string, Message> {
  return {
    error: {
      name: 'error',
      title: 'error',
      summary: 'The answer to a message that failed; with its id when it carried one.',
      description: errorCodeTable(),
      payload: errorPayload,
      correlationId: BY_ID,
      'x-error-codes': errorCodes
    },
    join: { name: 'join', title: 'join', summary: 'Join a room (canJoin decides); data may ask for kept history.', payload: envelope('join', { room, id, data: joinData }, ['room']), correlationId: BY_ID },
    'ack.join': { name: 'ack', title: 'ack (join)', summary: 'The join succeeded.', payload: envelope('ack', { id, data: joinAckData }, ['id', 'data']), correlationId: BY_ID },
    leave: { name: 'leave', title: 'leave', summary: 'Leave a room.', payload: envelope('leave', { room, id }, ['room']), correlationId: BY_ID },
    'ack.leave': { name: 'ack', title: 'ack (leave)', summary: 'The leave succeeded.', payload: envelope('ack', { id, data: { type: 'object', properties: { room }, required: ['room'] } }, ['id', 'data']), correlationId: BY_ID },
    ping: { name: 'ping', title: 'ping', summary: 'App-level liveness (browsers cannot send ping frames); always answered with pong.', payload: envelope('ping', { id }) },
    pong: { name: 'pong', title: 'pong', summary: 'The answer to ping.', payload: envelope('pong', {}) },
    auth: {
      name: 'auth',
      title: 'auth',
      summary: 'A fresh token for the same user before the current one expires; a bad one closes with 4401. Every room is checked again (kicked when canJoin says no).',
      payload: envelope('auth', { id, data: { type: 'object', properties: { token: { type: 'string', minLength: 1 } }, required: ['token'] } }, ['data']),
      correlationId: BY_ID
    },
    'ack.auth': { name: 'ack', title: 'ack (auth)', summary: 'The fresh token was accepted (no data).', payload: envelope('ack', { id }, ['id']), correlationId: BY_ID },
    presence: { name: 'presence', title: 'presence', summary: 'A member joined or left a room this connection is in (routes with presence: true).', payload: presencePayload },
    kicked: { name: 'kicked', title: 'kicked', summary: 'The connection is no longer in the room.', payload: kickedPayload },
    resync: { name: 'resync', title: 'resync', summary: "The room's history was lost or could not all be delivered: reload the room's state.", payload: resyncPayload }
  }
}

function describeRoute (route: CompiledRoute, builder: ChannelBuilder): void {
  const error = builder.shared('error')
  // the protocol's own client-to-server messages
  const joinAck = builder.shared('ack.join')
  builder.operation('join', 'receive', 'A client joins a room.', [builder.shared('join')], [joinAck, error])
  const leaveAck = builder.shared('ack.leave')
  builder.operation('leave', 'receive', 'A client leaves a room.', [builder.shared('leave')], [leaveAck, error])
  const pong = builder.shared('pong')
  builder.operation('ping', 'receive', 'A client checks the link.', [builder.shared('ping')], [pong])
  const authAck = builder.shared('ack.auth')
  builder.operation('auth', 'receive', 'A client refreshes its token.', [builder.shared('auth')], [authAck])

  // the app's messages, each with its ack
  const acks: string[] = [joinAck, leaveAck, authAck]
  for (const [type, message] of route.messages) {
    const ackData: JsonSchema = message.ack === undefined
      ? { description: "The handler's return value (no ack schema declared)." }
      : jsonSchemaOf(message.ack.schema)
    const ack = builder.message(`ack.${type}`, {
      name: 'ack',
      title: `ack (${type})`,
      summary: `The answer to ${type} when it carried an id: the handler's result.`,
      payload: envelope('ack', { id, data: ackData }, message.ack === undefined || dataOptional(message.ack) ? ['id'] : ['id', 'data']),
      correlationId: BY_ID
    })
    acks.push(ack)
    const key = builder.message(type, {
      name: type,
      title: type,
      summary: 'Validated against its schema (INVALID_MESSAGE otherwise); with a room, the sender must be in it (NOT_IN_ROOM).',
      payload: appEnvelope(type, message, { room, id }),
      correlationId: BY_ID
    })
    builder.operation(type, 'receive', `A client sends ${type}.`, [key], [ack, error])
  }

  // what the server sends
  for (const [type, compiled] of route.emits) {
    const key = builder.message(type, {
      name: type,
      title: type,
      summary: 'Sent by the server: to a room (with room, and an offset in a room with history) or to one connection or user.',
      payload: appEnvelope(type, compiled, {
        room,
        offset: { type: 'integer', minimum: 1, description: 'in a room with history: its place in the room' }
      })
    })
    builder.operation(type, 'send', `The server sends ${type}.`, [key])
  }
  builder.operation('ack', 'send', 'The server answers a message that carried an id.', acks)
  builder.operation('pong', 'send', 'The server answers ping.', [pong])
  builder.operation('error', 'send', 'The server reports a failed message.', [error])
  if (route.presence) builder.operation('presence', 'send', 'The server tells members who joined or left.', [builder.shared('presence')])
  builder.operation('kicked', 'send', 'The server removed the connection from a room.', [builder.shared('kicked')])
  builder.operation('resync', 'send', 'The server asks the client to reload a room.', [builder.shared('resync')])
}

/** The AsyncAPI 3.0.0 document of `routes`. */
export function describeRoutes (routes: readonly CompiledRoute[], options: DescribeOptions): AsyncApiDocument {
  const channels: Record<string, unknown> = {}
  const operations: Record<string, unknown> = {}
  const security = options.authRequired
    ? Object.keys(securitySchemes).map((name) => ({ $ref: `#/components/securitySchemes/${name}` }))
    : undefined
  for (const route of routes) {
    const key = unique(route.path.slice(1) === '' ? 'root' : route.path.slice(1), { has: (k) => k in channels })
    const builder = new ChannelBuilder(key, security)
    describeRoute(route, builder)
    channels[key] = {
      address: route.path,
      title: `WebSocket route ${route.path}`,
      description: `One WebSocket connection to GET ${route.path}: JSON text frames, one envelope each. ${options.authRequired ? 'A JWT is required, in one of the three places of the security schemes.' : 'A JWT is optional (anonymous connections have no user).'} The close codes are in the document's description and \`x-close-codes\`.`,
      messages: builder.messages,
      bindings: { ws: channelBinding },
      'x-close-codes': closeCodes
    }
    Object.assign(operations, builder.operations)
  }
  // a copy: the caller may change it without touching the shared parts of the next one
  return structuredClone({
    asyncapi: '3.0.0',
    info: {
      title: options.info?.title ?? 'fastify-realtime',
      version: options.info?.version ?? '1.0.0',
      description: [
        ...(options.info?.description === undefined ? [] : [options.info.description, '']),
        PROTOCOL,
        '',
        closeCodeTable()
      ].join('\n')
    },
    defaultContentType: 'application/json',
    channels,
    operations,
    components: { schemas: sharedSchemas, messages: protocolMessages(), securitySchemes }
  } satisfies AsyncApiDocument)
}
