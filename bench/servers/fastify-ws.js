// A reference point, not a product: Fastify with @fastify/websocket and the
// raw ws servers' pre-framed rooms, no JWT and no plugin. What the connect
// scenario measures of it is what routing an upgrade through Fastify costs
// (the request, the reply, the hooks) before anything fastify-realtime adds.
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { MAX_PAYLOAD, WS_PATH } from '../lib/protocol.js'
import { roomServer } from './raw-ws.js'

export async function start () {
  const app = Fastify({ logger: false })
  await app.register(websocket, { options: { perMessageDeflate: false, maxPayload: MAX_PAYLOAD } })
  const onConnection = roomServer('preframed')
  let open = 0
  app.get(WS_PATH, { websocket: true }, (socket, request) => {
    open++
    socket.once('close', () => { open-- })
    onConnection(socket, request.raw.socket)
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { port: app.server.address().port, path: WS_PATH, connections: () => open, close: () => app.close() }
}
