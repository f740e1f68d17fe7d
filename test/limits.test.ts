import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import WebSocket from 'ws'
import realtime from '../lib/index.js'
import { ConnectionLimits, RATE_CLOSE, RATE_LIMITED, RATE_OK, checkRate, type RateWindow } from '../lib/limits.js'
import { kRateCount, kRateStart } from '../lib/symbols.js'
import { SECRET, build, closed, connect, listen, sign, hub } from './helpers.js'
import { gate, refusal, until } from './support/upgrade.js'

const ROUTES = [{ path: '/rt' }]

function bearer (app: FastifyInstance, sub: string): WebSocket.ClientOptions {
  return { headers: { authorization: `Bearer ${sign(app, sub)}` } }
}

t.test('ConnectionLimits counts slots in all and per user', async (t) => {
  const limits = new ConnectionLimits(2, 1)
  t.equal(limits.active, 0)
  t.ok(limits.reserve())
  t.ok(limits.reserve())
  t.notOk(limits.reserve(), 'full at max')
  t.equal(limits.active, 2)
  limits.release()
  t.equal(limits.active, 1)
  t.ok(limits.reserve(), 'a released slot can be taken again')

  t.ok(limits.reserveUser('a'))
  t.notOk(limits.reserveUser('a'), 'a is at its limit')
  t.ok(limits.reserveUser('b'), 'other users are not affected')
  limits.releaseUser('a')
  t.ok(limits.reserveUser('a'), 'a released slot of a user can be taken again')
  limits.releaseUser('never-seen')
  t.ok(limits.reserveUser('never-seen'), 'releasing a user with no slot leaves nothing behind')
  t.notOk(limits.reserveUser('never-seen'))
})

t.test('ConnectionLimits: per-user counts go to zero and stay there', async (t) => {
  const limits = new ConnectionLimits(10, 3)
  for (let i = 0; i < 3; i++) t.ok(limits.reserveUser('u'))
  t.notOk(limits.reserveUser('u'))
  for (let i = 0; i < 5; i++) limits.releaseUser('u')
  for (let i = 0; i < 3; i++) t.ok(limits.reserveUser('u'), 'over-releasing does not create extra slots')
  t.notOk(limits.reserveUser('u'))
  for (let i = 0; i < 3; i++) limits.release()
  t.equal(limits.active, 0, 'the total never goes below zero')
  for (let i = 0; i < 10; i++) t.ok(limits.reserve())
  t.notOk(limits.reserve(), 'over-releasing does not raise the total')
})

t.test('checkRate: a fixed window; past max RATE_LIMITED, past twice max RATE_CLOSE; a new window resets', async (t) => {
  const window: RateWindow = { [kRateStart]: 0, [kRateCount]: 0 }
  const check = (now: number, max: number, windowMs: number) => checkRate(window, now, max, windowMs)
  const verdicts = []
  for (let i = 0; i < 7; i++) verdicts.push(check(1000, 3, 100))
  t.same(verdicts, [RATE_OK, RATE_OK, RATE_OK, RATE_LIMITED, RATE_LIMITED, RATE_LIMITED, RATE_CLOSE])
  t.equal(check(1099, 3, 100), RATE_CLOSE, 'still the same window')
  t.equal(check(1100, 3, 100), RATE_OK, 'windowMs later the count starts over')
  t.equal(check(1150, 3, 100), RATE_OK)
  t.equal(check(1199, 3, 100), RATE_OK)
  t.equal(check(1199, 3, 100), RATE_LIMITED, 'the window began at its first message')
  t.equal(RATE_OK, 0)
  t.not(RATE_LIMITED, RATE_CLOSE)

  const first: RateWindow = { [kRateStart]: 0, [kRateCount]: 0 }
  t.equal(checkRate(first, 0, 1, 1000), RATE_OK, 'a first message at time 0 counts too')
  t.equal(checkRate(first, 1, 1, 1000), RATE_LIMITED)
})

t.test('maxConnections: the next upgrade gets 503 with Retry-After and Fastify\'s JSON body; a close frees the slot', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnections: 2 })
  const url = await listen(app)
  const a = await connect(`${url}/rt`, bearer(app, 'a'))
  const b = await app.injectWS('/rt', bearer(app, 'b'))

  const refused = await refusal(`${url}/rt`, bearer(app, 'c'))
  t.equal(refused.statusCode, 503)
  t.match(refused.headers['retry-after'], /^\d+$/, 'Retry-After in seconds')
  t.same(refused.body, { statusCode: 503, code: 'FST_REALTIME_UNAVAILABLE', error: 'Service Unavailable', message: 'Server is at its connection limit or shutting down' })
  await t.rejects(app.injectWS('/rt', bearer(app, 'c')), { message: 'Unexpected server response: 503' }, 'injectWS too')
  await t.rejects(connect(`${url}/rt`, bearer(app, 'c')), { message: 'HTTP 503', statusCode: 503, headers: { 'retry-after': /\d/ } }, 'helpers.connect sees the same')
  t.equal(hub(app).limits.active, 2, 'refusals took nothing')

  a.ws.close()
  await until(() => hub(app).limits.active === 1)
  const c = await connect(`${url}/rt`, bearer(app, 'c'))
  t.equal(c.ws.readyState, WebSocket.OPEN, 'the slot a client closed is free again')

  b.terminate()
  await until(() => hub(app).limits.active === 1)
  const d = await app.injectWS('/rt', bearer(app, 'd'))
  t.equal(app.realtime.connections().length, 2, 'an injected client that went away freed its slot too')
  c.ws.close()
  d.terminate()
})

t.test('a server-side close frees the slot as well', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnections: 1 })
  const url = await listen(app)
  const a = await connect(`${url}/rt`, bearer(app, 'a'))
  const ended = closed(a.ws)
  app.realtime.connections()[0].close(4403, 'kicked')
  t.equal((await ended).code, 4403)
  await until(() => hub(app).limits.active === 0)
  const b = await connect(`${url}/rt`, bearer(app, 'b'))
  t.equal(b.ws.readyState, WebSocket.OPEN)
  b.ws.close()
})

t.test('a handshake refused after its slot was reserved gives the slot back (401, a failing app preValidation hook)', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnections: 1 })
  app.addHook('preValidation', async (request, reply) => {
    if (request.headers['x-refuse'] !== undefined) {
      reply.code(418)
      throw new Error('refused by the app')
    }
  })
  const url = await listen(app)
  for (let i = 0; i < 3; i++) {
    t.equal((await refusal(`${url}/rt`, { headers: { authorization: 'Bearer nope' } })).statusCode, 401)
    await t.rejects(app.injectWS('/rt', { headers: { authorization: 'Bearer nope' } }), { message: 'Unexpected server response: 401' })
    t.equal((await refusal(`${url}/rt`, { headers: { ...bearer(app, 'x').headers, 'x-refuse': '1' } })).statusCode, 418)
    await t.rejects(app.injectWS('/rt', { headers: { ...bearer(app, 'x').headers, 'x-refuse': '1' } }), { message: 'Unexpected server response: 418' })
  }
  await until(() => hub(app).limits.active === 0)
  t.pass('every slot came back')
  const ok = await connect(`${url}/rt`, bearer(app, 'ok'))
  t.equal(ok.ws.readyState, WebSocket.OPEN, 'the only slot is free for a good client')
  ok.ws.close()
})

/** An app (maxConnections 1) whose preValidation hook holds every handshake sent with `x-hold` until `hold.open()`. */
async function appHoldingHandshakes (t: Parameters<typeof build>[0]): Promise<{ app: FastifyInstance, hold: ReturnType<typeof gate>, holding: () => number }> {
  const app = await build(t, { routes: ROUTES, maxConnections: 1 })
  const hold = gate()
  let holding = 0
  app.addHook('preValidation', async (request) => {
    if (request.headers['x-hold'] === undefined) return
    holding++
    await hold.promise
  })
  return { app, hold, holding: () => holding }
}

t.test('handshakes in progress count toward maxConnections', async (t) => {
  const { app, hold, holding } = await appHoldingHandshakes(t)
  const url = await listen(app)
  const slow = connect(`${url}/rt`, { headers: { ...bearer(app, 'slow').headers, 'x-hold': '1' } })
  await until(() => holding() === 1)
  t.equal(app.realtime.connections().length, 0, 'no connection yet: the handshake is still running')

  const refused = await refusal(`${url}/rt`, bearer(app, 'fast'))
  t.equal(refused.statusCode, 503, 'the handshake in progress holds the only slot')
  t.ok(refused.headers['retry-after'])
  await t.rejects(app.injectWS('/rt', bearer(app, 'fast')), { message: 'Unexpected server response: 503' })

  hold.open()
  const client = await slow
  t.equal(client.ws.readyState, WebSocket.OPEN, 'the held handshake completes')
  t.equal(hub(app).limits.active, 1)
  client.ws.close()
  await until(() => hub(app).limits.active === 0)
  const next = await connect(`${url}/rt`, bearer(app, 'fast'))
  t.equal(next.ws.readyState, WebSocket.OPEN)
  next.ws.close()
})

/** A ws client whose TCP socket is reachable before the upgrade, to hang up (FIN) or reset (RST) mid-handshake. */
function pendingClient (url: string, options: WebSocket.ClientOptions): { ws: WebSocket, socket: Promise<import('node:net').Socket> } {
  const ws = new WebSocket(url, options)
  ws.on('error', () => {})
  const request = (ws as unknown as { _req: import('node:http').ClientRequest })._req
  return { ws, socket: new Promise((resolve) => request.once('socket', resolve)) }
}

t.test('a client that hangs up while its handshake is held: the slot comes back, no connection is made', async (t) => {
  const { app, hold, holding } = await appHoldingHandshakes(t)
  const url = await listen(app)
  const leaving = pendingClient(`${url}/rt`, { headers: { ...bearer(app, 'gone').headers, 'x-hold': '1' } })
  await until(() => holding() === 1)
  t.equal(hub(app).limits.active, 1)
  leaving.ws.terminate()
  hold.open()
  await until(() => hub(app).limits.active === 0)
  t.equal(app.realtime.connections().length, 0, 'the abandoned handshake never became a connection')
  const next = await connect(`${url}/rt`, bearer(app, 'next'))
  t.equal(next.ws.readyState, WebSocket.OPEN)
  next.ws.close()
})

t.test('a client that resets while its token is verified frees its slot at once and takes no per-user slot', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  const hold = gate()
  let holding = 0
  let verified = 0
  await app.register(jwt, {
    secret: SECRET,
    trusted: async (_request: unknown, payload: any) => {
      if (payload.hold === true) {
        holding++
        await hold.promise
      }
      return true
    }
  })
  await app.register(realtime, { routes: ROUTES, maxConnectionsPerUser: 1, maxConnections: 1 })
  app.addHook('preValidation', async () => { verified++ })
  const url = await listen(app)
  const leaving = pendingClient(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'zoe', { hold: true })}` } })
  await until(() => holding === 1)
  ;(await leaving.socket).resetAndDestroy()
  await until(() => hub(app).limits.active === 0)
  t.pass('the connection slot came back while the token was still being verified')
  hold.open()
  await until(() => verified === 1)
  const zoe = await connect(`${url}/rt`, bearer(app, 'zoe'))
  t.equal(zoe.ws.readyState, WebSocket.OPEN, 'zoe is not locked out by the handshake she abandoned')
  zoe.ws.close()
})

t.test('maxConnectionsPerUser: 429 for that user only; released on close', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnectionsPerUser: 2 })
  const url = await listen(app)
  const a1 = await connect(`${url}/rt`, bearer(app, 'alice'))
  const a2 = await app.injectWS('/rt', bearer(app, 'alice'))

  const refused = await refusal(`${url}/rt`, bearer(app, 'alice'))
  t.equal(refused.statusCode, 429)
  t.same(refused.body, { statusCode: 429, code: 'FST_REALTIME_USER_LIMIT', error: 'Too Many Requests', message: 'Too many connections for this user' })
  await t.rejects(app.injectWS('/rt', bearer(app, 'alice')), { message: 'Unexpected server response: 429' })
  await t.rejects(connect(`${url}/rt?token=${sign(app, 'alice')}`), { message: 'HTTP 429', statusCode: 429 }, 'wherever the token comes from')
  t.equal(hub(app).limits.active, 2, 'a 429 gives back its connection slot')

  const bob = await connect(`${url}/rt`, bearer(app, 'bob'))
  t.equal(bob.ws.readyState, WebSocket.OPEN, 'other users are unaffected')

  a1.ws.close()
  await until(() => app.realtime.connections().filter((c) => c.sub === 'alice').length === 1)
  const a3 = await connect(`${url}/rt`, bearer(app, 'alice'))
  t.equal(a3.ws.readyState, WebSocket.OPEN, 'a closed connection frees its per-user slot')
  await t.rejects(connect(`${url}/rt`, bearer(app, 'alice')), { message: 'HTTP 429', statusCode: 429 })
  a2.terminate()
  a3.ws.close()
  bob.ws.close()
})

t.test('maxConnectionsPerUser does not limit anonymous clients', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnectionsPerUser: 1, auth: { required: false } })
  await app.ready()
  const one = await app.injectWS('/rt')
  const two = await app.injectWS('/rt')
  t.equal(app.realtime.connections().length, 2)
  const tokenWithoutSub = await app.injectWS('/rt', { headers: { authorization: `Bearer ${(app as any).jwt.sign({ role: 'bot' })}` } })
  const again = await app.injectWS('/rt', { headers: { authorization: `Bearer ${(app as any).jwt.sign({ role: 'bot' })}` } })
  t.equal(app.realtime.connections().length, 4, 'a token with no sub has no per-user limit')
  for (const ws of [one, two, tokenWithoutSub, again]) ws.terminate()
})
