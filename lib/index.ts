import websocket, { type WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import type { WebSocketServer } from 'ws'
import { protocolToken } from './auth.js'
import { errors } from './errors.js'
import { HeartbeatSweep } from './heartbeat.js'
import { resolveOptions, type ResolvedOptions } from './options.js'
import { compileRoute, registerRoute } from './route.js'
import { RealtimeServer } from './server.js'
import { closeAllConnections } from './shutdown.js'
import { RealtimeSocket } from './socket.js'
import { UpgradeSockets } from './upgrades.js'
import type { RealtimeOptions, RouteDefinition } from './types.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The realtime server: broadcast, send, rooms, members, stats. */
    realtime: RealtimeServer
  }
}

/** The `WebSocket` option as @fastify/websocket's types spell it. */
type WebSocketClass = NonNullable<WebsocketPluginOptions['options']>['WebSocket']

/** Answer the `bearer` subprotocol a browser offers with its token; else the first offered. */
function handleProtocols (protocols: Set<string>): string | false {
  if (protocols.has('bearer')) return 'bearer'
  const [first] = protocols
  return first ?? false
}

async function useWebsocket (app: FastifyInstance, options: ResolvedOptions, server: RealtimeServer): Promise<void> {
  if (app.hasDecorator('websocketServer')) {
    server.foreignWebsocket = true
    const wss = (app as unknown as { websocketServer: WebSocketServer }).websocketServer
    const theirs = wss.options.handleProtocols
    wss.options.handleProtocols = (protocols, request) => {
      if (protocols.has('bearer') && protocolToken(request.headers['sec-websocket-protocol']) !== undefined) return 'bearer'
      return theirs == null ? handleProtocols(protocols) : theirs(protocols, request)
    }
    return
  }
  await app.register(websocket, {
    // no clientTracking: the plugin tracks its connections (a Set entry and a
    // listener closure less per connection); its preClose closes them with 1001
    options: { maxPayload: options.maxPayload, perMessageDeflate: options.perMessageDeflate, handleProtocols, clientTracking: false, WebSocket: RealtimeSocket as unknown as WebSocketClass },
    errorHandler (err, socket, request) {
      // protocol errors (oversize, bad UTF-8, bad frames) close the socket with their code; log, do not shout
      request.log.debug({ err }, 'fastify-realtime: websocket error')
      if (socket.readyState < 2) socket.terminate()
    }
  })
}

const plugin: FastifyPluginAsync<RealtimeOptions> = async function fastifyRealtime (app, opts) {
  const options = resolveOptions(opts)
  if (options.auth.required && !app.hasRequestDecorator('jwtVerify')) throw new errors.FST_REALTIME_JWT_MISSING()

  let ready = false
  const upgrades = new UpgradeSockets(app.server)
  const server = new RealtimeServer(options, app.log, (def: RouteDefinition<any>) => {
    if (ready) throw new errors.FST_REALTIME_ROUTE_AFTER_READY(JSON.stringify(def?.path))
    registerRoute(app, server, upgrades, compileRoute(def))
  })
  app.decorate('realtime', server)

  const heartbeat = options.heartbeat === false ? undefined : new HeartbeatSweep(options.heartbeat.interval, () => server.connections())

  // Registered before @fastify/websocket's own preClose, so clients get 1001 first.
  app.addHook('preClose', async () => {
    heartbeat?.stop()
    await closeAllConnections(server)
    await upgrades.endRefused(server)
  })
  app.addHook('onClose', async () => {
    upgrades.stop()
    await server.adapter.close()
  })

  await useWebsocket(app, options, server)
  for (const def of options.routes) server.route(def)
  await server.adapter.attach(server)

  app.addHook('onReady', async () => {
    ready = true
    heartbeat?.start()
  })
}

/**
 * Real-time rooms over WebSocket for Fastify.
 * @example
 * await app.register(jwt, { secret })
 * await app.register(realtime, { routes: [{ path: '/chat', messages: {} }] })
 */
export const realtime = fp(plugin, { fastify: '5.x', name: 'fastify-realtime' })
export default realtime

export { RealtimeServer } from './server.js'
export { Connection } from './connection.js'
export { RealtimeError, ErrorCode, CloseCode, errors } from './errors.js'
export { memoryAdapter, MemoryAdapter } from './adapters/memory.js'
export type { Adapter, AdapterHub } from './adapters/adapter.js'
export { defineRoute } from './define.js'
export type * from './types.js'
