// The example chat: an ordinary Fastify API (login, rooms, announcements)
// with fastify-realtime on /chat and a static page that uses the client;
// Prometheus metrics on /metrics and a readiness probe on /ready.
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import fastifyStatic from '@fastify/static'
import { Type } from '@sinclair/typebox'
import { Registry } from 'prom-client'
import realtime, { RealtimeError, defineRoute } from 'fastify-realtime'

/** The rooms of the team chat. */
export const ROOMS = ['general', 'random', 'dev']

const here = dirname(fileURLToPath(import.meta.url))
// the built browser client (dist/esm/client), found through the package's own exports
const clientDir = dirname(fileURLToPath(import.meta.resolve('fastify-realtime/client')))
// the AsyncAPI viewer (@asyncapi/react-component, a devDependency): its standalone bundle and styles
const viewerDir = (() => {
  try {
    return dirname(createRequire(import.meta.url).resolve('@asyncapi/react-component/package.json'))
  } catch {
    return undefined
  }
})()

const Name = Type.String({ minLength: 1, maxLength: 24, pattern: '^[A-Za-z0-9_.-]+$' })
const Text = Type.String({ minLength: 1, maxLength: 2000 })
/** What the server sends into a room: a message, or an announcement from the REST API. */
const Posted = Type.Object({ from: Name, text: Text, at: Type.Integer({ description: 'ms since the epoch' }) })

/** The realtime route: `chat.send` to a room the sender is in; presence on. */
export function chatRoute (rooms = ROOMS) {
  return defineRoute({
    path: '/chat',
    presence: true,
    canJoin: (_conn, room) => rooms.includes(room),
    emits: {
      'chat.message': Posted,
      'chat.announcement': Posted
    },
    messages: {
      'chat.send': {
        schema: Type.Object({ text: Text }),
        ack: Type.Object({ ok: Type.Literal(true) }),
        handler (conn, data, msg) {
          // the server already checked that the sender is in msg.room
          if (msg.room === undefined) throw new RealtimeError('say which room', { code: 'ROOM_REQUIRED' })
          conn.broadcast(msg.room, 'chat.message', { from: conn.user.sub, text: data.text, at: Date.now() })
          return { ok: true }
        }
      }
    }
  })
}

/**
 * Build the app without listening.
 * @param {object} [options]
 * @param {string} options.jwtSecret HS256 secret for @fastify/jwt
 * @param {{ key: Buffer, cert: Buffer }} [options.https] serve HTTPS (and so wss://)
 * @param {boolean | object} [options.logger=false] Fastify's logger option
 * @param {string[]} [options.rooms=ROOMS]
 * @param {string | number} [options.tokenTtl='12h'] lifetime of issued tokens
 * @param {object} [options.adapter] e.g. `redisAdapter(...)` from fastify-realtime/redis (default: in memory)
 * @param {false | object} [options.history={ size: 200 }] the plugin's `history` option: what a
 *   page shows when it opens a room, and what a page that reconnects catches up on
 */
export async function build ({ jwtSecret, https, logger = false, rooms = ROOMS, tokenTtl = '12h', adapter, history = { size: 200 } } = {}) {
  if (typeof jwtSecret !== 'string' || jwtSecret.length < 32) throw new TypeError('build(): jwtSecret must be a string of 32 characters or more')
  const app = Fastify({ logger, ...(https === undefined ? {} : { https }) })
  await app.register(jwt, { secret: jwtSecret, sign: { expiresIn: tokenTtl }, verify: { algorithms: ['HS256'] } })
  // a registry of the app's own (prom-client's global one works too: `metrics: true`)
  const registry = new Registry()
  await app.register(realtime, {
    routes: [chatRoute(rooms)],
    ...(adapter === undefined ? {} : { adapter }),
    // every room keeps its last 200 messages (5 min): in the process, or in Redis with REDIS_URL
    history,
    metrics: { registry },
    // the contract of /chat as AsyncAPI 3.0.0; /asyncapi.html renders it
    asyncapi: { path: '/asyncapi.json', info: { title: 'Team chat', version: '1.0.0', description: 'The realtime API of the example chat: log in with POST /login, then connect to /chat with the token.' } }
  })

  // Prometheus scrapes this; in production keep it off the public listener (or behind auth)
  app.get('/metrics', async (request, reply) => reply.type(registry.contentType).send(await registry.metrics()))

  // what a load balancer's readiness probe asks: not shutting down, and broadcasts reach the other instances
  app.get('/ready', async (request, reply) => {
    const draining = app.realtime.draining
    const adapterConnected = app.realtime.stats().adapter.connected
    return reply.code(!draining && adapterConnected ? 200 : 503).send({ ready: !draining && adapterConnected, draining, adapterConnected })
  })

  await app.register(fastifyStatic, { root: join(here, 'public') })
  await app.register(fastifyStatic, { root: clientDir, prefix: '/client/', decorateReply: false })
  if (viewerDir !== undefined) {
    for (const dir of ['browser/standalone', 'styles']) {
      await app.register(fastifyStatic, { root: join(viewerDir, dir), prefix: `/asyncapi-viewer/${dir}/`, decorateReply: false })
    }
  }

  // no passwords in a demo: a name is enough; a real app checks credentials here
  app.post('/login', {
    schema: { body: Type.Object({ name: Name }, { additionalProperties: false }) }
  }, async (request) => ({ token: app.jwt.sign({ sub: request.body.name }) }))

  app.get('/rooms', async () => ({
    rooms: await Promise.all(rooms.map(async (name) => {
      const members = await app.realtime.members(name)
      return { name, members: new Set(members.map((m) => m.sub)).size }
    }))
  }))

  app.post('/announce', {
    onRequest: async (request) => { await request.jwtVerify() },
    schema: { body: Type.Object({ room: Type.String(), text: Text }, { additionalProperties: false }) }
  }, async (request, reply) => {
    const { room, text } = request.body
    if (!rooms.includes(room)) return reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no room ${room}` })
    app.realtime.broadcast(room, 'chat.announcement', { from: request.user.sub, text, at: Date.now() })
    return { ok: true }
  })

  return app
}
