import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { WebSocket } from 'ws'
import { armExpiry } from './auth.js'
import { onSocketClose, onSocketError, RealtimeConnection } from './connection.js'
import type { CompiledRoute } from './context.js'
import { createHandshakeHook, handshakes } from './handshake.js'
import { watchLiveness } from './heartbeat.js'
import type { Hub } from './hub.js'
import { onSocketMessage } from './inbound.js'
import { dropIfNotClosed } from './limits.js'
import { redactedRequest } from './log.js'
import { CloseCode } from './protocol.js'
import { slimRequest } from './request.js'
import { shutdownClose } from './shutdown.js'
import { releaseUpgrade } from './ws/internals.js'
import type { UpgradeSockets } from './ws/upgrades.js'
import { adoptSocket } from './ws/websocket.js'

/**
 * Register a compiled route as a @fastify/websocket GET route on `app`: the
 * handshake hook before the upgrade, a connection after it.
 */
export function registerRoute (app: FastifyInstance, hub: Hub, upgrades: UpgradeSockets, route: CompiledRoute): void {
  const hook = createHandshakeHook(hub)
  hub.metrics?.addRoute(route.path)
  app.route({
    method: 'GET',
    url: route.path,
    websocket: true,
    onRequest: hub.metrics === undefined ? hook : hub.metrics.countRefusals(hook),
    logSerializers: { req: redactedRequest as (req: unknown) => Record<string, unknown> },
    handler: function onUpgraded (socket: WebSocket, request: FastifyRequest) {
      const handshake = handshakes.get(request)
      if (handshake === undefined) {
        socket.close(CloseCode.INTERNAL_ERROR, 'handshake state missing')
        return
      }
      handshakes.delete(request)
      const conn = new RealtimeConnection(hub, hub.nextConnectionId(), route, socket, request, handshake)
      conn.slotUser = handshake.slot.adopt()
      socket.on('message', onSocketMessage)
      socket.on('close', onSocketClose) // ws emits it once; once() would add a wrapper per connection
      watchLiveness(conn)
      armExpiry(conn, handshake.expiresAt)
      if (hub.closing) {
        const { code, reason } = shutdownClose(hub)
        conn.close(code, reason)
        return
      }
      adoptSocket(socket, hub.foreignWebsocket, hub.options.maxPayload, onSocketError)
      releaseUpgrade(socket, request)
      slimRequest(request, hub.sharedStrings)
      upgrades.adopted(socket)
      hub.addConnection(conn)
      const onConnect = route.onConnect
      if (onConnect === undefined) return
      socket.pause()
      Promise.resolve()
        .then(() => onConnect(conn))
        .then(() => { socket.resume() }, (err: unknown) => {
          conn.log.error({ err, connId: conn.id }, 'fastify-realtime: onConnect failed')
          failConnect(conn, hub.options.closeGracePeriod)
        })
    } as any
  })
}

/**
 * onConnect failed: close with 1011 at once, and read again so the client's
 * close reply arrives; a client that never answers is dropped after `graceMs`,
 * so failing connects cannot hold slots for ws's 30 s close timeout.
 */
function failConnect (conn: RealtimeConnection, graceMs: number): void {
  conn.close(CloseCode.INTERNAL_ERROR, 'internal error')
  conn.ws.resume()
  dropIfNotClosed(conn, graceMs)
}
