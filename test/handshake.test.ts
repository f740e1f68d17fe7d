import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import type { Socket } from 'node:net'
import WebSocket from 'ws'
import realtime from '../lib/index.js'
import { HandshakeSlot } from '../lib/handshake.js'
import { ConnectionLimits } from '../lib/limits.js'
import { SECRET, build, closed, connect, listen, sign, hub } from './helpers.js'
import { gate, refusal, until } from './support/upgrade.js'

const ROUTES = [{ path: '/rt' }]

function bearer (app: FastifyInstance, sub: string): { headers: Record<string, string> } {
  return { headers: { authorization: `Bearer ${sign(app, sub)}` } }
}

t.test('app hooks run before the upgrade, in Fastify order, and the connection keeps their request', async (t) => {
  const app = await build(t, { routes: ROUTES })
  const order: string[] = []
  app.decorateRequest('tenant', '')
  app.addHook('onRequest', async (request) => {
    order.push('onRequest')
    ;(request as any).tenant = request.headers['x-tenant']
  })
  app.addHook('preValidation', async () => { order.push('preValidation') })
  app.addHook('preHandler', async () => { order.push('preHandler') })
  const url = await listen(app)
  const client = await connect(`${url}/rt`, { headers: { ...bearer(app, 'a').headers, 'x-tenant': 'acme' } })
  t.same(order, ['onRequest', 'preValidation', 'preHandler'])
  t.equal((app.realtime.connections()[0].request as any).tenant, 'acme', 'conn.request is the request the hooks saw')
  client.ws.close()
})

t.test('an app onRequest hook can refuse the upgrade with its own status and body', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnections: 1 })
  app.addHook('onRequest', async (request, reply) => {
    if (request.headers['x-banned'] !== undefined) await reply.code(451).send({ reason: 'banned here' })
  })
  const url = await listen(app)
  const refused = await refusal(`${url}/rt`, { headers: { ...bearer(app, 'a').headers, 'x-banned': '1' } })
  t.equal(refused.statusCode, 451)
  t.same(refused.body, { reason: 'banned here' })
  await t.rejects(app.injectWS('/rt', { headers: { ...bearer(app, 'a').headers, 'x-banned': '1' } }), { message: 'Unexpected server response: 451' })
  t.equal(hub(app).limits.active, 0, 'it ran before the plugin took a slot')
  const ok = await connect(`${url}/rt`, bearer(app, 'a'))
  t.equal(ok.ws.readyState, WebSocket.OPEN)
  ok.ws.close()
})

t.test('an app preValidation hook can refuse the upgrade with its own status and error', async (t) => {
  const app = await build(t, { routes: ROUTES })
  app.addHook('preValidation', async (request) => {
    if (request.headers['x-tenant'] !== 'acme') {
      const err = Object.assign(new Error('unknown tenant'), { statusCode: 403, code: 'APP_TENANT' })
      throw err
    }
  })
  const url = await listen(app)
  const refused = await refusal(`${url}/rt`, bearer(app, 'a'))
  t.equal(refused.statusCode, 403)
  t.match(refused.body, { statusCode: 403, code: 'APP_TENANT', message: 'unknown tenant' })
  await t.rejects(app.injectWS('/rt', bearer(app, 'a')), { message: 'Unexpected server response: 403' })
  const ok = await connect(`${url}/rt`, { headers: { ...bearer(app, 'a').headers, 'x-tenant': 'acme' } })
  t.equal(ok.ws.readyState, WebSocket.OPEN)
  ok.ws.close()
  await until(() => hub(app).limits.active === 0)
  t.pass('no slot left behind by the refusals')
})

t.test('checks run in order: Origin 403, then capacity 503, then token 401, then per-user 429', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnections: 2, maxConnectionsPerUser: 1 })
  const url = await listen(app)
  const alice = await connect(`${url}/rt`, bearer(app, 'alice'))
  t.equal((await refusal(`${url}/rt`, { headers: { authorization: 'Bearer garbage' } })).statusCode, 401, 'room left: a bad token is 401')
  t.equal((await refusal(`${url}/rt`, bearer(app, 'alice'))).statusCode, 429, 'a good token over its user limit is 429')
  const bob = await connect(`${url}/rt`, bearer(app, 'bob'))
  t.equal((await refusal(`${url}/rt`, { headers: { authorization: 'Bearer garbage' } })).statusCode, 503, 'full: 503 before the token is read')
  t.equal((await refusal(`${url}/rt`, bearer(app, 'alice'))).statusCode, 503, 'full: 503 before the user limit')
  t.equal((await refusal(`${url}/rt`, { origin: 'https://evil.example.com' })).statusCode, 403, 'a foreign Origin is 403 even when full')
  alice.ws.close()
  bob.ws.close()
})

t.test('plain HTTP to a realtime path is 404 and takes no slot', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnections: 1 })
  await app.ready()
  const res = await app.inject({ url: '/rt', headers: { authorization: `Bearer ${sign(app, 'a')}` } })
  t.equal(res.statusCode, 404)
  t.equal(hub(app).limits.active, 0)
})

/** Open a client that will not answer the server's close frame, so app.close() waits out the grace period. */
async function stubbornClient (app: FastifyInstance, url: string): Promise<WebSocket> {
  const client = await connect(`${url}/rt`, bearer(app, 'stubborn'))
  client.ws.pause()
  return client.ws
}

/** Server-side upgrade sockets, to check none is left behind. */
function trackUpgradeSockets (app: FastifyInstance): Set<Socket> {
  const sockets = new Set<Socket>()
  app.server.on('upgrade', (_request, socket: Socket) => {
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  return sockets
}

t.test("while the app is closing, upgrades get 503 (Fastify's own answer by default)", async (t) => {
  const app = await build(t, { routes: ROUTES, closeGracePeriod: 3000 })
  const url = await listen(app)
  const upgrades = trackUpgradeSockets(app)
  const stubborn = await stubbornClient(app, url)
  const closing = app.close()
  await until(() => app.realtime.draining)
  const refused = await refusal(`${url}/rt`, bearer(app, 'late'))
  t.equal(refused.statusCode, 503)
  t.match(refused.body, { statusCode: 503, error: 'Service Unavailable' })
  await t.rejects(app.injectWS('/rt', bearer(app, 'late')), { message: 'Unexpected server response: 503' })
  const ended = closed(stubborn)
  stubborn.resume()
  t.equal((await ended).code, 1001)
  await closing
  t.ok([...upgrades].every((socket) => socket.destroyed), 'the plugin ended the refused upgrade socket')
})

t.test('app.close() finishes although an upgrade was refused with Fastify\'s closing 503', async (t) => {
  const app = await build(t, { routes: ROUTES, closeGracePeriod: 200 })
  const url = await listen(app)
  const upgrades = trackUpgradeSockets(app)
  const stubborn = await stubbornClient(app, url)
  const closing = app.close().then(() => 'closed')
  await until(() => app.realtime.draining)
  t.equal((await refusal(`${url}/rt`, bearer(app, 'late'))).statusCode, 503)
  stubborn.resume()
  const outcome = await Promise.race([closing, new Promise((resolve) => setTimeout(resolve, 1500, 'still closing'))])
  t.equal(outcome, 'closed', 'app.close() resolved within the grace period and a margin')
  t.ok([...upgrades].every((socket) => socket.destroyed), 'no upgrade socket left behind')
  for (const socket of upgrades) socket.destroy() // only if the assertions above failed
  await closing
})

t.test('while the app is closing, with return503OnClosing false, the plugin answers 503 with Retry-After', async (t) => {
  const app = await build(t, { routes: ROUTES, closeGracePeriod: 3000 }, { return503OnClosing: false })
  const url = await listen(app)
  const stubborn = await stubbornClient(app, url)
  const closing = app.close()
  await until(() => app.realtime.draining)
  const refused = await refusal(`${url}/rt`, bearer(app, 'late'))
  t.equal(refused.statusCode, 503)
  t.ok(refused.headers['retry-after'])
  t.match(refused.body, { statusCode: 503, code: 'FST_REALTIME_UNAVAILABLE' })
  await t.rejects(app.injectWS('/rt', bearer(app, 'late')), { message: 'Unexpected server response: 503' })
  stubborn.resume()
  await closing
})

t.test('a handshake whose token check outlasts the start of app.close() gets 503, not a connection', async (t) => {
  const app = Fastify({ return503OnClosing: false })
  const hold = gate()
  let holding = 0
  await app.register(jwt, {
    secret: SECRET,
    trusted: async () => {
      holding++
      await hold.promise
      return true
    }
  })
  await app.register(realtime, { routes: ROUTES })
  const url = await listen(app)
  const pending = refusal(`${url}/rt`, bearer(app, 'late'))
  await until(() => holding === 1)
  const closing = app.close()
  await until(() => app.realtime.draining)
  hold.open()
  const refused = await pending
  t.equal(refused.statusCode, 503)
  t.match(refused.body, { code: 'FST_REALTIME_UNAVAILABLE' })
  t.equal(hub(app).limits.active, 0)
  await closing
})

t.test('HandshakeSlot: released once, not after a connection adopted it; a per-user slot goes with it', async (t) => {
  const limits = new ConnectionLimits(1, 1)
  t.ok(limits.reserve())
  const slot = new HandshakeSlot(limits)
  t.ok(slot.reserveUser('u'))
  t.equal(slot.sub, 'u')
  t.notOk(new HandshakeSlot(limits).reserveUser('u'), 'the user is at its limit')
  slot.release()
  slot.release()
  t.equal(limits.active, 0, 'a second release does nothing')
  t.ok(limits.reserveUser('u'), 'the user slot came back')

  const fresh = new ConnectionLimits(1, 1)
  t.ok(fresh.reserve())
  const adopted = new HandshakeSlot(fresh)
  adopted.adopt()
  adopted.releaseIfPending()
  t.equal(fresh.active, 1, 'a connection owns it now')
  adopted.release()
  t.equal(fresh.active, 0, 'the connection releases it on close')

  const gone = new ConnectionLimits(1, 1)
  t.ok(gone.reserve())
  const left = new HandshakeSlot(gone)
  left.releaseIfPending()
  t.ok(left.reserveUser('v'), 'a handshake whose client left is not refused')
  t.equal(left.sub, null, 'but holds no user slot')
  t.ok(gone.reserveUser('v'), "v's slot is still free")
})
