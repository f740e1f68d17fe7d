// fastify-realtime as a user would run it: @fastify/jwt verifies every
// upgrade, the route's `publish` handler validates with TypeBox and broadcasts
// to the room, the sender excepted. Limits are raised so they never trip.
// `start({ metrics: true })` is the same server with Prometheus metrics on (in
// a registry of its own), to measure what they cost.
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import { Type } from '@sinclair/typebox'
import realtime from 'fastify-realtime'
import { MAX_PAYLOAD, SECRET, WS_PATH } from '../lib/protocol.js'

const MessageData = Type.Object({
  seq: Type.Integer(),
  ts: Type.Number(),
  pad: Type.String({ maxLength: 1024 })
})

/**
 * `metrics`: Prometheus metrics on (a registry of its own); `anonymous`: no
 * @fastify/jwt and `auth: { required: false }`, so no token is verified (to
 * tell the plugin's own connect cost from JWT's); `extra`: more plugin options
 * (the `realtime-history` server passes `history`).
 */
export async function start ({ metrics = false, anonymous = false, ...extra } = {}) {
  const app = Fastify({ logger: false })
  if (!anonymous) await app.register(jwt, { secret: SECRET })
  await app.register(realtime, {
    metrics: metrics ? { registry: new (await import('prom-client')).Registry() } : false,
    maxConnections: 100_000,
    maxPayload: MAX_PAYLOAD,
    heartbeat: false,
    rateLimit: { max: 1_000_000, windowMs: 1000 },
    maxBufferedBytes: 256 * 1024 * 1024,
    ...(anonymous ? { auth: { required: false } } : {}),
    ...extra,
    routes: [{
      path: WS_PATH,
      messages: {
        publish: {
          schema: MessageData,
          handler (conn, data, msg) {
            if (msg.room !== undefined) conn.broadcast(msg.room, 'message', data, { except: conn.id })
          }
        }
      }
    }]
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { port: app.server.address().port, path: WS_PATH, connections: () => app.realtime.stats().connections, close: () => app.close() }
}
