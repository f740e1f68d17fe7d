import type { TSchema } from '@sinclair/typebox'
import type { TypeCheck } from '@sinclair/typebox/compiler'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { Connection } from './connection.js'
import { compileSchema } from './envelope.js'
import { CloseCode, errors } from './errors.js'
import { createHandshakeHook, handshakes } from './handshake.js'
import { redactedRequest } from './log.js'
import type { RealtimeServer } from './server.js'
import { adoptForeignSocket } from './shutdown.js'
import { releaseUpgrade, type UpgradeSockets } from './upgrades.js'
import type { MessageDefinition, RouteDefinition } from './types.js'

/** Message types the protocol itself answers; routes cannot define them. */
export const RESERVED_TYPES: ReadonlySet<string> = new Set(['join', 'leave', 'ping', 'auth', 'ack', 'pong', 'error', 'presence'])

export interface CompiledMessage {
  check: TypeCheck<TSchema>
  handler: MessageDefinition['handler']
}

/** A route definition with its schemas compiled, once, at registration. */
export interface CompiledRoute {
  path: string
  messages: ReadonlyMap<string, CompiledMessage>
  canJoin: RouteDefinition['canJoin']
  onConnect: RouteDefinition['onConnect']
  onClose: RouteDefinition['onClose']
  presence: boolean
}

function invalid (path: unknown, problem: string): never {
  throw new errors.FST_REALTIME_INVALID_ROUTE(JSON.stringify(path), problem)
}

function optionalFunction (def: RouteDefinition, name: 'canJoin' | 'onConnect' | 'onClose'): void {
  if (def[name] !== undefined && typeof def[name] !== 'function') invalid(def.path, `${name} must be a function`)
}

/** Validate a route definition and compile each message schema. */
export function compileRoute (def: RouteDefinition<any>): CompiledRoute {
  if (def === null || typeof def !== 'object') invalid(def, 'must be an object')
  if (typeof def.path !== 'string' || !def.path.startsWith('/')) invalid(def.path, 'path must be a string starting with /')
  optionalFunction(def, 'canJoin')
  optionalFunction(def, 'onConnect')
  optionalFunction(def, 'onClose')
  if (def.presence !== undefined && typeof def.presence !== 'boolean') invalid(def.path, 'presence must be a boolean')
  const messages = new Map<string, CompiledMessage>()
  for (const [type, message] of Object.entries(def.messages ?? {}) as Array<[string, MessageDefinition]>) {
    if (RESERVED_TYPES.has(type)) invalid(def.path, `message type "${type}" is reserved by the protocol`)
    if (typeof message?.handler !== 'function') invalid(def.path, `message "${type}" needs a handler function`)
    if (message.schema === null || typeof message.schema !== 'object') invalid(def.path, `message "${type}" needs a TypeBox schema`)
    messages.set(type, { check: compileSchema(message.schema), handler: message.handler })
  }
  return {
    path: def.path,
    messages,
    canJoin: def.canJoin,
    onConnect: def.onConnect,
    onClose: def.onClose,
    presence: def.presence === true
  }
}

/** Register a compiled route as a @fastify/websocket GET route on `app`. */
export function registerRoute (app: FastifyInstance, server: RealtimeServer, upgrades: UpgradeSockets, route: CompiledRoute): void {
  app.route({
    method: 'GET',
    url: route.path,
    websocket: true,
    onRequest: createHandshakeHook(server),
    logSerializers: { req: redactedRequest as (req: unknown) => Record<string, unknown> },
    handler: function onUpgraded (socket: WebSocket, request: FastifyRequest) {
      const handshake = handshakes.get(request)
      if (handshake === undefined) {
        socket.close(CloseCode.INTERNAL_ERROR, 'handshake state missing')
        return
      }
      handshakes.delete(request)
      const conn = new Connection(server, route, socket, request, handshake)
      if (server.closing) {
        conn.close(CloseCode.GOING_AWAY, 'server shutting down')
        return
      }
      if (server.foreignWebsocket) {
        adoptForeignSocket(socket, server.options.maxPayload)
      } else {
        // @fastify/websocket's error listener holds the Reply; ours does the same work.
        // Theirs is the last one added (an app's 'connection' listeners ran before it).
        // Ours goes on before theirs goes, so no key is deleted from the events object
        // (a delete turns it into a dictionary that costs 256 bytes a connection).
        const theirs = socket.listeners('error').at(-1) as ((err: Error) => void) | undefined
        socket.on('error', Connection.onSocketError)
        if (theirs !== undefined) socket.removeListener('error', theirs)
      }
      releaseUpgrade(socket, request)
      upgrades.adopted(socket)
      server.addConnection(conn)
      const onConnect = route.onConnect
      if (onConnect === undefined) return
      socket.pause()
      Promise.resolve()
        .then(() => onConnect(conn))
        .then(() => { socket.resume() }, (err: unknown) => {
          conn.log.error({ err, connId: conn.id }, 'fastify-realtime: onConnect failed')
          conn.close(CloseCode.INTERNAL_ERROR, 'internal error')
        })
    } as any
  })
}
