// Working with @fastify/websocket: registering it, or living beside the one the
// app registered itself. Everything about a foreign registration is here.
import websocket, { type WebsocketPluginOptions } from '@fastify/websocket'
import type { FastifyInstance } from 'fastify'
import type { WebSocket, WebSocketServer } from 'ws'
import { protocolToken } from '../auth.js'
import { CloseCode } from '../protocol.js'
import { answeringPeerClose, limitPayload, replaceRegistrationErrorListener } from './internals.js'
import { RealtimeSocket } from './socket.js'
import { releaseHeldFrames } from './writer.js'

/** The `WebSocket` option as @fastify/websocket's types spell it. */
type WebSocketClass = NonNullable<WebsocketPluginOptions['options']>['WebSocket']

/** Answer the `bearer` subprotocol a browser offers with its token; else the first offered. */
function handleProtocols (protocols: Set<string>): string | false {
  if (protocols.has('bearer')) return 'bearer'
  const [first] = protocols
  return first ?? false
}

export interface WebsocketSettings {
  maxPayload: number
  perMessageDeflate: boolean
}

/**
 * Register @fastify/websocket with the plugin's settings, or, when the app did
 * so already, make its server answer the `bearer` subprotocol. Returns whether
 * the registration is the app's own (foreign).
 */
export async function useWebsocket (app: FastifyInstance, settings: WebsocketSettings): Promise<boolean> {
  if (app.hasDecorator('websocketServer')) {
    const wss = (app as unknown as { websocketServer: WebSocketServer }).websocketServer
    const theirs = wss.options.handleProtocols
    wss.options.handleProtocols = (protocols, request) => {
      if (protocols.has('bearer') && protocolToken(request.headers['sec-websocket-protocol']) !== undefined) return 'bearer'
      return theirs == null ? handleProtocols(protocols) : theirs(protocols, request)
    }
    return true
  }
  await app.register(websocket, {
    // no clientTracking: the plugin tracks its connections (a Set entry and a
    // listener closure less per connection); its preClose closes them with 1001
    options: { maxPayload: settings.maxPayload, perMessageDeflate: settings.perMessageDeflate, handleProtocols, clientTracking: false, WebSocket: RealtimeSocket as unknown as WebSocketClass },
    errorHandler (err, socket, request) {
      // protocol errors (oversize, bad UTF-8, bad frames) close the socket with their code; log, do not shout
      request.log.debug({ err }, 'fastify-realtime: websocket error')
      if (socket.readyState < 2) socket.terminate()
    }
  })
  return false
}

/**
 * Take over a freshly upgraded socket. On the plugin's own registration, swap
 * @fastify/websocket's error listener (it holds the Reply) for `onError`. On a
 * foreign one, its options are not ours: apply `maxPayload` per socket, write
 * held frames before any close, and turn the bare `close()` its default
 * preClose sends (clients would see 1005) into 1001.
 */
export function adoptSocket (ws: WebSocket, foreign: boolean, maxPayload: number, onError: (this: WebSocket, err: Error) => void): void {
  if (!foreign) {
    replaceRegistrationErrorListener(ws, onError)
    return
  }
  limitPayload(ws, maxPayload)
  const close = ws.close
  ws.close = function closeGoingAway (code?: number, reason?: string | Buffer) {
    // as RealtimeSocket does for the plugin's own sockets
    releaseHeldFrames(this)
    // ws answers a client's code-less close frame with a bare close() too: leave that be
    if (code === undefined && !answeringPeerClose(this)) close.call(this, CloseCode.GOING_AWAY, 'server shutting down')
    else close.call(this, code, reason)
  }
}
