import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import jwt from '@fastify/jwt'
import realtime from '../lib/index.js'
import type { RealtimeOptions } from '../lib/index.js'
import { SECRET, build, closed, connect, listen, sign, sleep, type Inbox } from './helpers.js'
import { refusal, until } from './support/upgrade.js'

// SPEC section 11: app.close() with drain.spread. Timings are checked from
// below only (a timer never fires early; a busy machine only makes it late).

t.setTimeout(60_000)

interface Setup {
  app: FastifyInstance
  url: string
  open: (sub: string) => Promise<Inbox>
  /** server-side closes, in the order onClose saw them */
  closes: Array<{ sub: string | null, code: number, at: number }>
}

async function setup (t: Parameters<typeof build>[0], opts: RealtimeOptions, server: FastifyServerOptions = {}): Promise<Setup> {
  const closes: Setup['closes'] = []
  const app = await build(t, {
    heartbeat: false,
    ...opts,
    routes: [{ path: '/rt', onClose: (conn, code) => { closes.push({ sub: conn.sub, code, at: Date.now() }) } }]
  }, server)
  const url = await listen(app)
  const open = async (sub: string): Promise<Inbox> => await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, sub)}` } })
  return { app, url, open, closes }
}

t.test('with spread, app.close() closes every connection with 1012 and "retry <ms>", in random order, evenly over the spread', async (t) => {
  const spread = 1200
  const n = 12
  const s = await setup(t, { drain: { spread, retry: 2500 }, closeGracePeriod: 3000 })
  const clients: Inbox[] = []
  for (let i = 0; i < n; i++) clients.push(await s.open(`c${i}`))
  const codes = clients.map((c) => closed(c.ws).then((close) => ({ ...close, at: Date.now() })))
  const started = Date.now()
  await s.app.close()
  const took = Date.now() - started
  const results = await Promise.all(codes)
  t.same(results.map(({ code, reason }) => ({ code, reason })), Array(n).fill({ code: 1012, reason: 'retry 2500' }), 'every client got 1012 with the hint')
  const times = results.map((r) => r.at - started).sort((a, b) => a - b)
  for (let k = 0; k < n; k++) {
    t.ok(times[k] >= Math.floor(k * spread / n) - 5, `close ${k + 1} came at ${times[k]} ms, not before ${Math.floor(k * spread / n)} ms`)
  }
  t.ok(took >= Math.floor((n - 1) * spread / n) - 5, `close() took the spread (${took} ms)`)
  const order = s.closes.map((c) => c.sub)
  t.equal(order.length, n, 'every onClose ran before close() resolved')
  t.not(order.join(), clients.map((_, i) => `c${i}`).join(), 'not in connection order (1 chance in 12! to fail)')
  t.ok(s.closes.every((c) => c.code === 1012), 'the server saw 1012 echoed')
})

t.test('while draining: draining is true, new upgrades get 503 with Retry-After, open connections still get broadcasts', async (t) => {
  const s = await setup(t, { drain: { spread: 1500, retry: 2200 }, closeGracePeriod: 2000 })
  const clients = await Promise.all(['a', 'b', 'c', 'd', 'e', 'f'].map((sub) => s.open(sub)))
  for (const c of clients) await c.request({ type: 'join', room: 'r', id: 1 })
  t.equal(s.app.realtime.draining, false)
  const closing = s.app.close()
  await until(() => s.app.realtime.draining) // Fastify begins closing (its preClose hooks) a tick later
  t.equal(s.app.realtime.draining, true, 'true once app.close() begins')
  const refused = await refusal(`${s.url}/rt`, { headers: { authorization: `Bearer ${sign(s.app, 'late')}` } })
  t.equal(refused.statusCode, 503)
  t.equal(refused.headers['retry-after'], '3', 'Retry-After in whole seconds: 2200 ms rounds up to 3')
  // the first client is closed at once; the others are still open and still served
  const stillOpen = clients.filter((c) => c.ws.readyState === 1)
  t.ok(stillOpen.length >= 1, `${stillOpen.length} still open while the drain goes on`)
  s.app.realtime.broadcast('r', 'during-drain', { n: 1 })
  for (const c of stillOpen) {
    if (c.ws.readyState === 1) t.same(await Promise.race([c.type('during-drain'), closed(c.ws).then(() => 'closed first')]), { type: 'during-drain', room: 'r', data: { n: 1 } })
  }
  await closing
})

t.test('while draining with return503OnClosing false: the plugin answers 503 FST_REALTIME_UNAVAILABLE with Retry-After', async (t) => {
  const s = await setup(t, { drain: { spread: 800, retry: 500 }, closeGracePeriod: 1000 }, { return503OnClosing: false })
  await s.open('a')
  await s.open('b')
  const closing = s.app.close()
  const refused = await refusal(`${s.url}/rt`, { headers: { authorization: `Bearer ${sign(s.app, 'late')}` } })
  t.equal(refused.statusCode, 503)
  t.match(refused.body, { code: 'FST_REALTIME_UNAVAILABLE' })
  t.equal(refused.headers['retry-after'], '1', 'at least 1 second, one header')
  await closing
})

t.test('spread 0: 1001 to all at once, as before; Fastify\'s 503 gets a Retry-After too', async (t) => {
  const s = await setup(t, { closeGracePeriod: 3000 })
  const clients = await Promise.all(['a', 'b', 'c'].map((sub) => s.open(sub)))
  const stubborn = await s.open('stubborn')
  stubborn.ws.pause() // keeps close() waiting, so the refusal below happens while it closes
  const codes = Promise.all(clients.map((c) => closed(c.ws)))
  const closing = s.app.close()
  t.same(await codes, Array(3).fill({ code: 1001, reason: 'server shutting down' }))
  const refused = await refusal(`${s.url}/rt`, { headers: { authorization: `Bearer ${sign(s.app, 'late')}` } })
  t.equal(refused.statusCode, 503)
  t.equal(refused.headers['retry-after'], '1')
  stubborn.ws.resume()
  await closing
})

t.test('what does not close back is terminated closeGracePeriod after the spread; close() resolves', async (t) => {
  const s = await setup(t, { drain: { spread: 300 }, closeGracePeriod: 300 })
  const polite = await s.open('polite')
  const deaf = await s.open('deaf')
  deaf.ws.pause()
  ;(deaf.ws as any)._socket.pause()
  const politeClosed = closed(polite.ws)
  const started = Date.now()
  await s.app.close()
  const took = Date.now() - started
  t.same(await politeClosed, { code: 1012, reason: 'retry 1000' })
  t.ok(took >= 300, `waited for the grace period (${took} ms)`)
  t.equal(s.closes.find((c) => c.sub === 'deaf')?.code, 1006, 'the deaf one was terminated')
  t.equal(s.closes.length, 2)
})

t.test('nothing outlives app.close(): no timer, no socket, with history and drain on', async (t) => {
  const resources = (): Record<string, number> => {
    const counts: Record<string, number> = {}
    for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1
    return counts
  }
  await sleep(50)
  const before = resources()
  const s = await setup(t, { drain: { spread: 200, retry: 0 }, closeGracePeriod: 500, history: { size: 10, ttl: 1000 } })
  const clients = await Promise.all(['a', 'b', 'c'].map((sub) => s.open(sub)))
  for (const c of clients) await c.request({ type: 'join', room: 'r', id: 1 })
  s.app.realtime.broadcast('r', 'm')
  const reasons = Promise.all(clients.map((c) => closed(c.ws)))
  await s.app.close()
  t.same((await reasons).map((r) => r.reason), ['retry 0', 'retry 0', 'retry 0'])
  await sleep(50)
  t.same(resources(), before, 'the same timers and handles as before the app existed')
})

t.test('a drain that could outlast Fastify\'s pluginTimeout (which bounds app.close()) fails register, naming drain.spread', async (t) => {
  const register = async (server: FastifyServerOptions, drain: RealtimeOptions['drain'], closeGracePeriod = 5000): Promise<void> => {
    const app = Fastify(server)
    t.after(() => app.close())
    await app.register(jwt, { secret: SECRET })
    await app.register(realtime, { drain, closeGracePeriod, heartbeat: false })
  }
  await t.rejects(register({}, { spread: 4000 }), {
    code: 'FST_REALTIME_INVALID_OPTION',
    message: /option "drain\.spread" \(4000 ms\), with closeGracePeriod \(5000 ms\) and 1 s for terminated sockets, must end within Fastify's pluginTimeout \(10000 ms\).*pluginTimeout: 15000/
  }, 'default pluginTimeout: 4000 + 5000 + 1000 does not fit')
  await register({}, { spread: 3000 }) // 9,000 ms fits in 10,000
  await t.rejects(register({}, { spread: 30_000 }, 0), { code: 'FST_REALTIME_INVALID_OPTION' }, 'a 30 s spread needs a longer pluginTimeout')
  await register({ pluginTimeout: 40_000 }, { spread: 30_000 })
  await register({ pluginTimeout: 0 }, { spread: 600_000 })
  await register({}, { spread: 0 }, 60_000) // no drain: not this check's business
  t.pass('fitting drains register')
})

t.test('a drain longer than the default pluginTimeout completes when pluginTimeout is raised', async (t) => {
  const s = await setup(t, { drain: { spread: 2500 }, closeGracePeriod: 500 }, { pluginTimeout: 4500 })
  const clients = await Promise.all(['a', 'b', 'c', 'd'].map((sub) => s.open(sub)))
  const codes = Promise.all(clients.map((c) => closed(c.ws)))
  await s.app.close()
  t.same((await codes).map((c) => c.code), [1012, 1012, 1012, 1012])
})
