// The metrics of SPEC 12 after real traffic (values, not names): connections,
// refusals, messages by route and type, envelopes sent, errors, drops,
// disconnect codes, handler durations, rooms, the adapter; bounded labels; two
// registrations sharing one registry; nothing left in the registry after
// app.close(); the option's validation; prom-client missing.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import { Type } from '@sinclair/typebox'
import { Counter, Registry, register as globalRegistry, type OpenMetricsContentType } from 'prom-client'
import realtime, { RealtimeError, type RealtimeOptions } from '../lib/index.js'
import { METRIC_NAMES, loadPromClient } from '../lib/metrics.js'
import { SECRET, build as buildApp, closed, connect, hub, inject, listen, sign, sleep, type Inbox } from './helpers.js'

t.setTimeout(60_000)

const root = new URL('..', import.meta.url)

interface Sample { labels: Record<string, string | number>, value: number, metricName?: string }

/** Every sample of one metric (a scrape of it: collect() runs). */
async function samples (registry: Registry, name: string): Promise<Sample[]> {
  const metric = registry.getSingleMetric(name)
  if (metric === undefined) throw new Error(`no metric ${name}`)
  return (await metric.get()).values as Sample[]
}

/** The value of `name` with exactly these labels (0 when absent); `sample` picks a histogram's _count or _sum. */
async function value (registry: Registry, name: string, labels: Record<string, string> = {}, sample?: string): Promise<number> {
  const found = (await samples(registry, name)).find((s) => {
    if (sample !== undefined && s.metricName !== `${name}${sample}`) return false
    const keys = Object.keys(s.labels).filter((k) => k !== 'le')
    if (sample === undefined && 'le' in s.labels) return false
    return keys.length === Object.keys(labels).length && keys.every((k) => String(s.labels[k]) === labels[k])
  })
  return found?.value ?? 0
}

/** Wait until `check()` holds (polling; no timing assertion). */
async function until (check: () => boolean | Promise<boolean>, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await sleep(2)
  }
}

const Text = Type.Object({ text: Type.String() })

/** `build`, ready, with no grace period on close (injected sockets never answer a close). */
async function build (t: Parameters<typeof buildApp>[0], opts: RealtimeOptions = {}): Promise<Awaited<ReturnType<typeof buildApp>>> {
  const app = await buildApp(t, { closeGracePeriod: 0, ...opts })
  await app.ready()
  return app
}

/** An app with metrics in its own registry; route /rt with sync, async, throwing and rejecting handlers. */
async function metered (t: Parameters<typeof build>[0], opts: RealtimeOptions = {}): Promise<{ app: Awaited<ReturnType<typeof build>>, registry: Registry }> {
  const registry = new Registry()
  const app = await build(t, {
    heartbeat: false,
    metrics: { registry },
    routes: [{
      path: '/rt',
      messages: {
        echo: { schema: Text, handler: (_conn, data) => data },
        later: { schema: Text, handler: async (_conn, data) => { await sleep(1); return data } },
        boom: { schema: Text, handler: () => { throw new Error('boom') } },
        sorry: { schema: Text, handler: async () => { throw new RealtimeError('no', { code: 'NOPE' }) } }
      }
    }, { path: '/other' }],
    ...opts
  })
  return { app, registry }
}

t.test('connections, connects, refusals by status, rooms and the adapter gauge', async (t) => {
  const { app, registry } = await metered(t, { maxConnections: 3, maxConnectionsPerUser: 1 })
  await app.ready()
  t.equal(await value(registry, 'realtime_connections', { route: '/rt' }), 0, 'a route shows before its first connection')
  t.equal(await value(registry, 'realtime_connects_total', { route: '/other' }), 0)
  for (const status of ['401', '403', '429', '503']) t.equal(await value(registry, 'realtime_handshake_refusals_total', { status }), 0, `refusals ${status} start at 0`)

  const alice = await inject(app, '/rt', sign(app, 'alice'))
  const bob = await inject(app, '/rt', sign(app, 'bob'))
  await t.rejects(inject(app, '/rt'), /401/)
  await t.rejects(inject(app, '/rt', sign(app, 'eve'), { origin: 'https://evil.example', host: 'api.example' }), /403/)
  const carol = await inject(app, '/other', sign(app, 'carol'))
  await t.rejects(inject(app, '/rt', sign(app, 'alice')), /503/, 'full: 503 before the per-user check')
  carol.ws.close()
  await until(() => app.realtime.connections().length === 2)
  await t.rejects(inject(app, '/rt', sign(app, 'alice')), /429/)
  await t.rejects(inject(app, '/rt', sign(app, 'x'), { authorization: 'Bearer not-a-token' }), /401/)

  t.equal(await value(registry, 'realtime_handshake_refusals_total', { status: '401' }), 2)
  t.equal(await value(registry, 'realtime_handshake_refusals_total', { status: '403' }), 1)
  t.equal(await value(registry, 'realtime_handshake_refusals_total', { status: '429' }), 1)
  t.equal(await value(registry, 'realtime_handshake_refusals_total', { status: '503' }), 1)
  t.equal(await value(registry, 'realtime_connects_total', { route: '/rt' }), 2)
  t.equal(await value(registry, 'realtime_connects_total', { route: '/other' }), 1)
  t.equal(await value(registry, 'realtime_connections', { route: '/rt' }), 2)
  t.equal(await value(registry, 'realtime_connections', { route: '/other' }), 0, 'carol left')
  t.equal(await value(registry, 'realtime_rooms'), 0)

  await alice.request({ type: 'join', room: 'a', id: 1 })
  await alice.request({ type: 'join', room: 'b', id: 2 })
  await bob.request({ type: 'join', room: 'b', id: 3 })
  t.equal(await value(registry, 'realtime_rooms'), 2)
  t.equal(await value(registry, 'realtime_adapter_connected'), 1, '1 with the in-memory adapter')
  bob.ws.close()
  await until(() => app.realtime.connections().length === 1)
  t.equal(await value(registry, 'realtime_rooms'), 2, 'alice is still in both')
  t.equal(await value(registry, 'realtime_connections', { route: '/rt' }), 1)
  alice.ws.close()
})

t.test('adapter_connected follows the adapter', async (t) => {
  let connected = true
  const adapter = {
    get connected () { return connected },
    attach () {},
    publish () {},
    publishToUser () {},
    join () {},
    leave () {},
    async members () { return [] },
    async close () {}
  }
  const { registry } = await metered(t, { adapter })
  t.equal(await value(registry, 'realtime_adapter_connected'), 1)
  connected = false
  t.equal(await value(registry, 'realtime_adapter_connected'), 0)
})

t.test('messages received by route and type, envelopes sent, errors by code, handler durations', async (t) => {
  const { app, registry } = await metered(t)
  const alice = await inject(app, '/rt', sign(app, 'alice'))
  const bob = await inject(app, '/rt', sign(app, 'bob'))
  const other = await inject(app, '/other', sign(app, 'carol'))

  await alice.request({ type: 'join', room: 'r', id: 'j1' })
  await bob.request({ type: 'join', room: 'r', id: 'j2' })
  alice.send({ type: 'ping' })
  await alice.type('pong')
  t.same((await alice.request({ type: 'echo', room: 'r', data: { text: 'hi' }, id: 1 })).data, { text: 'hi' })
  t.same((await alice.request({ type: 'later', data: { text: 'hey' }, id: 2 })).data, { text: 'hey' })
  t.equal((await alice.request({ type: 'boom', data: { text: 'x' }, id: 3 })).code, 'HANDLER_ERROR')
  t.equal((await alice.request({ type: 'sorry', data: { text: 'x' }, id: 4 })).code, 'NOPE')
  t.equal((await alice.request({ type: 'echo', data: { text: 42 }, id: 5 })).code, 'INVALID_MESSAGE', 'a schema failure: no handler run')
  t.equal((await alice.request({ type: 'user-secret-type-xyz', id: 6 })).code, 'UNKNOWN_TYPE')
  alice.send('not json')
  t.equal((await alice.type('error')).code, 'BAD_JSON')
  t.equal((await alice.request({ type: 'echo', extra: true, id: 7 })).code, 'INVALID_ENVELOPE')
  t.equal((await other.request({ type: 'echo', data: { text: 'x' }, id: 8 })).code, 'UNKNOWN_TYPE', 'echo is not declared on /other')
  await alice.request({ type: 'leave', room: 'r', id: 'l1' })
  app.realtime.broadcast('r', 'news', { n: 1 })
  await bob.type('news')

  const received = async (route: string, type: string): Promise<number> => await value(registry, 'realtime_messages_received_total', { route, type })
  t.equal(await received('/rt', 'join'), 2)
  t.equal(await received('/rt', 'leave'), 1)
  t.equal(await received('/rt', 'ping'), 1)
  t.equal(await received('/rt', 'echo'), 2, 'a valid one and a schema failure')
  t.equal(await received('/rt', 'later'), 1)
  t.equal(await received('/rt', 'boom'), 1)
  t.equal(await received('/rt', 'sorry'), 1)
  t.equal(await received('/rt', 'unknown'), 3, 'an undeclared type, bad JSON and an invalid envelope')
  t.equal(await received('/other', 'unknown'), 1, 'a type is labelled only when its own route declares it')
  const total = (await samples(registry, 'realtime_messages_received_total')).reduce((sum, s) => sum + s.value, 0)
  t.equal(total, app.realtime.stats().messagesIn, 'every message counted once')

  const delivered = alice.messages.length + bob.messages.length + other.messages.length
  t.equal(await value(registry, 'realtime_messages_sent_total'), delivered, 'every envelope the clients got, counted once')
  t.equal(await value(registry, 'realtime_messages_sent_total'), app.realtime.stats().messagesOut)

  for (const [code, n] of Object.entries({ HANDLER_ERROR: 1, NOPE: 1, INVALID_MESSAGE: 1, UNKNOWN_TYPE: 2, BAD_JSON: 1, INVALID_ENVELOPE: 1 })) {
    t.equal(await value(registry, 'realtime_errors_total', { code }), n, `errors_total{code="${code}"}`)
  }

  const duration = 'realtime_handler_duration_seconds'
  for (const type of ['echo', 'later', 'boom', 'sorry']) {
    t.equal(await value(registry, duration, { route: '/rt', type }, '_count'), 1, `one ${type} run observed, failures included`)
  }
  t.ok(await value(registry, duration, { route: '/rt', type: 'later' }, '_sum') > 0, 'the async run took its time')
  const text = await registry.getSingleMetricAsString(duration)
  t.match(text, /realtime_handler_duration_seconds_bucket\{le="0\.0005",route="\/rt",type="echo"\} \d/)
  for (const inbox of [alice, bob, other]) inbox.ws.close()
})

t.test('disconnects by the close code the closing handshake carried', async (t) => {
  const { app, registry } = await metered(t)
  const code = async (c: string): Promise<number> => await value(registry, 'realtime_disconnects_total', { code: c })

  const a = await inject(app, '/rt', sign(app, 'a'))
  a.ws.close(1000)
  await until(async () => await code('1000') === 1)

  const b = await inject(app, '/rt', sign(app, 'b'))
  const bClosed = closed(b.ws)
  app.realtime.connections().find((c) => c.sub === 'b')?.close(4403, 'banned')
  t.same(await bClosed, { code: 4403, reason: 'banned' })
  await until(async () => await code('4403') === 1)

  // a client that answers a server's close with a different code: the server's is the one counted
  const c = await inject(app, '/rt', sign(app, 'c'))
  const url = await listen(app)
  const d = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'd')}` } })
  ;(d.ws as any)._receiver.removeAllListeners('conclude')
  ;(d.ws as any)._receiver.on('conclude', () => { d.ws.close(1000, 'whatever') })
  app.realtime.connections().find((conn) => conn.sub === 'd')?.close(4000, 'go')
  await until(async () => await code('4000') === 1)
  t.equal(await code('1000'), 1, 'not the echoed 1000')

  c.ws.terminate()
  await until(async () => await code('1006') === 1)

  const e = await inject(app, '/rt', sign(app, 'e'))
  e.send({ type: 'auth', data: { token: 'bad' } })
  t.equal((await closed(e.ws)).code, 4401)
  await until(async () => await code('4401') === 1)
  d.ws.terminate()
})

t.test('drops by reason: rate_limited, backlog, closed, slow_consumer; the history hooks', async (t) => {
  let release: () => void = () => {}
  const registry = new Registry()
  const app = await build(t, {
    heartbeat: false,
    metrics: { registry },
    rateLimit: { max: 3, windowMs: 60_000 },
    maxBufferedBytes: 64 * 1024,
    closeGracePeriod: 10_000,
    routes: [{
      path: '/rt',
      messages: { hold: { schema: Type.Any(), handler: async () => await new Promise<void>((resolve) => { release = resolve }) } }
    }]
  })
  const drops = async (reason: string): Promise<number> => await value(registry, 'realtime_drops_total', { reason })
  for (const reason of ['rate_limited', 'slow_consumer', 'closed', 'backlog', 'history_unavailable']) t.equal(await drops(reason), 0)

  // rate: 3 pass; the 4th to 6th are refused; the 7th closes 4429: every one counted as received
  const a = await inject(app, '/rt', sign(app, 'a'))
  for (let i = 0; i < 7; i++) a.send({ type: 'ping' })
  t.equal((await closed(a.ws)).code, 4429)
  t.equal(await drops('rate_limited'), 4)
  t.equal(await value(registry, 'realtime_messages_received_total', { route: '/rt', type: 'ping' }), 7, 'rate-limited ones included')
  t.equal(await value(registry, 'realtime_errors_total', { code: 'RATE_LIMITED' }), 3)

  // backlog: behind a pending handler, at most rateLimit.max wait; the next is refused
  const b = await inject(app, '/rt', sign(app, 'b'))
  b.send({ type: 'hold' }) // no id: no ack to drop once it settles
  b.send({ type: 'ping' })
  b.send({ type: 'ping' })
  b.send({ type: 'ping' }) // fourth in the window: rate-limited
  await until(async () => await drops('rate_limited') === 5)
  t.equal(await drops('backlog'), 0)
  b.ws.terminate()
  await until(() => app.realtime.connections().length === 0)
  t.equal(await value(registry, 'realtime_messages_received_total', { route: '/rt', type: 'ping' }), 7 + 3,
    'the two that waited behind the handler and were never processed are counted too')
  release()

  // closed: a send to a connection whose close began
  const c = await inject(app, '/rt', sign(app, 'c'))
  const conn = app.realtime.connections()[0]
  conn.close(1000)
  t.equal(conn.send('late', {}), false)
  t.equal(await drops('closed'), 1)
  await closed(c.ws).catch(() => {})

  // slow consumer: a reader that stops reading, on a real socket
  const url = await listen(app)
  const slow = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'slow')}` } })
  await slow.request({ type: 'join', room: 'room', id: 1 })
  ;(slow.ws as any)._socket.pause()
  const slowConn = app.realtime.connections().find((x) => x.sub === 'slow')!
  for (let i = 0; i < 4000 && slowConn.open; i++) {
    app.realtime.broadcast('room', 'flood', { payload: 'f'.repeat(32 * 1024) })
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(slowConn.open, false, 'the slow consumer was caught')
  t.equal(await drops('slow_consumer'), 1)
  ;(slow.ws as any)._socket.resume()
  await closed(slow.ws)

  // what the history code calls
  const metrics = hub(app).metrics!
  hub(app).dropped('history_unavailable')
  metrics.recovery(true)
  metrics.recovery(true)
  metrics.recovery(false)
  t.equal(await drops('history_unavailable'), 1)
  t.equal(await value(registry, 'realtime_history_recoveries_total', { recovered: 'true' }), 2)
  t.equal(await value(registry, 'realtime_history_recoveries_total', { recovered: 'false' }), 1)
  const dropSum = (await samples(registry, 'realtime_drops_total')).reduce((sum, s) => sum + s.value, 0)
  t.equal(dropSum - await drops('slow_consumer'), app.realtime.stats().drops, 'stats().drops counts the same drops (a slow consumer is not a message)')
})

t.test('the backlog limit: refused while a handler holds the line', async (t) => {
  let release: () => void = () => {}
  let held = false
  const registry = new Registry()
  const app = await build(t, {
    heartbeat: false,
    metrics: { registry },
    rateLimit: { max: 2, windowMs: 1 },
    routes: [{
      path: '/rt',
      messages: { hold: { schema: Type.Any(), handler: async () => await new Promise<void>((resolve) => { held = true; release = resolve }) } }
    }]
  })
  const a = await inject(app, '/rt', sign(app, 'a'))
  a.send({ type: 'hold', id: 0 })
  await until(() => held)
  // windowMs 1: the rate window renews while these wait, so they are refused for the backlog (at most `max` wait)
  for (let i = 0; i < 6; i++) {
    a.send({ type: 'ping' })
    await sleep(3)
  }
  await until(async () => await value(registry, 'realtime_drops_total', { reason: 'backlog' }) > 0)
  const backlog = await value(registry, 'realtime_drops_total', { reason: 'backlog' })
  const limited = await value(registry, 'realtime_drops_total', { reason: 'rate_limited' })
  t.equal(backlog + limited, 4, 'two wait, the other four are refused (backlog, or rate if two landed in one window)')
  release()
  await until(async () => await value(registry, 'realtime_messages_received_total', { route: '/rt', type: 'ping' }) === 6)
  a.ws.close()
})

t.test('no label carries a room, a user or a connection id', async (t) => {
  const { app, registry } = await metered(t)
  const room = 'room-secret-1234'
  const sub = 'user-secret-5678'
  const a = await inject(app, '/rt', sign(app, sub))
  await a.request({ type: 'join', room, id: 1 })
  await a.request({ type: 'echo', room, data: { text: 'x' }, id: 2 })
  await a.request({ type: `${room}-as-a-type`, id: 3 })
  const connId = app.realtime.connections()[0].id
  app.realtime.broadcast(room, 'news', {})
  await a.type('news')
  const text = await registry.metrics()
  for (const secret of [room, sub, connId]) t.notOk(text.includes(secret), `${secret} is in no label`)
  for (const name of METRIC_NAMES) t.match(text, `# TYPE realtime_${name} `, `realtime_${name} is exposed`)
  a.ws.close()
})

t.test('two encapsulated registrations with one registry share the metrics: nothing counted twice, no throw', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(async (child) => {
    await child.register(realtime, { heartbeat: false, closeGracePeriod: 0, metrics: { registry }, routes: [{ path: '/a' }] })
  })
  await app.register(async (child) => {
    await child.register(realtime, { heartbeat: false, closeGracePeriod: 0, metrics: { registry }, routes: [{ path: '/b' }] })
  })
  const url = await listen(app)
  const open = async (path: string, sub: string): Promise<Inbox> => await connect(`${url}${path}`, { headers: { authorization: `Bearer ${sign(app, sub)}` } })
  const a = await open('/a', 'a')
  const b1 = await open('/b', 'b1')
  const b2 = await open('/b', 'b2')
  await a.request({ type: 'join', room: 'r', id: 1 })
  await b1.request({ type: 'join', room: 'r', id: 1 })
  t.equal(await value(registry, 'realtime_connects_total', { route: '/a' }), 1)
  t.equal(await value(registry, 'realtime_connects_total', { route: '/b' }), 2)
  t.equal(await value(registry, 'realtime_connections', { route: '/a' }), 1)
  t.equal(await value(registry, 'realtime_connections', { route: '/b' }), 2)
  t.equal(await value(registry, 'realtime_messages_received_total', { route: '/a', type: 'join' }), 1)
  t.equal(await value(registry, 'realtime_messages_received_total', { route: '/b', type: 'join' }), 1)
  t.equal(await value(registry, 'realtime_messages_sent_total'), 2, 'two acks')
  t.equal(await value(registry, 'realtime_rooms'), 2, 'a room in each context')
  await app.close()
  for (const name of METRIC_NAMES) t.equal(registry.getSingleMetric(`realtime_${name}`), undefined, `${name} removed by app.close()`)
  for (const inbox of [a, b1, b2]) t.not(inbox.ws.readyState, 1)
})

t.test('two apps with one registry: the first to close leaves its counts; the last removes the metrics', async (t) => {
  const registry = new Registry()
  const one = await build(t, { heartbeat: false, metrics: { registry }, routes: [{ path: '/rt' }] })
  const two = await build(t, { heartbeat: false, metrics: { registry }, routes: [{ path: '/rt' }] })
  const a = await inject(one, '/rt', sign(one, 'a'))
  const b = await inject(two, '/rt', sign(two, 'b'))
  await a.request({ type: 'join', room: 'r', id: 1 })
  t.equal(await value(registry, 'realtime_connects_total', { route: '/rt' }), 2)
  await one.close()
  t.equal(await value(registry, 'realtime_connects_total', { route: '/rt' }), 2, 'counters never go back')
  t.equal(await value(registry, 'realtime_messages_sent_total'), 1)
  t.equal(await value(registry, 'realtime_disconnects_total', { code: '1001' }), 1)
  t.equal(await value(registry, 'realtime_connections', { route: '/rt' }), 1, 'gauges are the open apps\'')
  t.equal(await value(registry, 'realtime_rooms'), 0)
  await two.close()
  t.equal(registry.getSingleMetric('realtime_connections'), undefined)
  t.equal(b.ws.readyState === 1, false)
})

t.test('a metric of the same name that is not the plugin\'s fails register', async (t) => {
  const registry = new Registry()
  // eslint-disable-next-line no-new -- registered in the registry
  new Counter({ name: 'realtime_errors_total', help: 'someone else', registers: [registry] })
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await t.rejects(async () => { await app.register(realtime, { metrics: { registry } }) }, { code: 'FST_REALTIME_METRIC_EXISTS', message: /"realtime_errors_total"/ })
  t.equal(registry.getSingleMetric('realtime_connections'), undefined, 'none of the plugin\'s registered')
  t.equal(registry.getMetricsAsArray().length, 1)
})

t.test('metrics: true uses prom-client\'s global registry; app.close() leaves it clean for the next app', async (t) => {
  t.equal(globalRegistry.getSingleMetric('realtime_connects_total'), undefined, 'nothing before')
  for (let round = 0; round < 2; round++) {
    const app = await build(t, { heartbeat: false, metrics: true, routes: [{ path: '/rt' }] })
    const a = await inject(app, '/rt', sign(app, 'a'))
    await a.request({ type: 'join', room: 'r', id: 1 })
    t.equal(await value(globalRegistry, 'realtime_connects_total', { route: '/rt' }), 1, `round ${round}: starts clean`)
    t.equal(await value(globalRegistry, 'realtime_messages_received_total', { route: '/rt', type: 'join' }), 1)
    await app.close()
    t.equal(globalRegistry.getSingleMetric('realtime_connects_total'), undefined, `round ${round}: removed`)
  }
})

t.test('metrics.prefix', async (t) => {
  const registry = new Registry()
  const app = await build(t, { heartbeat: false, metrics: { registry, prefix: 'chat_' }, routes: [{ path: '/rt' }] })
  const a = await inject(app, '/rt', sign(app, 'a'))
  t.equal(await value(registry, 'chat_connects_total', { route: '/rt' }), 1)
  t.equal(registry.getSingleMetric('realtime_connects_total'), undefined)
  const none = await build(t, { heartbeat: false, metrics: { registry, prefix: '' }, routes: [{ path: '/rt' }] })
  await none.ready()
  t.ok(registry.getSingleMetric('connections'), 'an empty prefix')
  a.ws.close()
})

t.test('a failed register leaves nothing in the registry', async (t) => {
  const registry = new Registry()
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await t.rejects(async () => { await app.register(realtime, { metrics: { registry }, routes: [{ path: 'no-slash' }] }) }, { code: 'FST_REALTIME_INVALID_ROUTE' })
  t.equal(registry.getMetricsAsArray().length, 0)
})

t.test('metrics off: no metrics object, nothing registered', async (t) => {
  const app = await build(t, { heartbeat: false, routes: [{ path: '/rt' }] })
  const a = await inject(app, '/rt', sign(app, 'a'))
  await a.request({ type: 'join', room: 'r', id: 1 })
  t.equal(hub(app).metrics, undefined)
  t.equal(globalRegistry.getSingleMetric('realtime_connections'), undefined)
  a.ws.close()
})

t.test('the metrics option is validated, naming the bad key', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['yes', /option "metrics" must be true or an object/],
    [{ registry: {} }, /option "metrics.registry" must be a prom-client Registry/],
    [{ prefix: '1x_' }, /option "metrics.prefix" must be a Prometheus name prefix/],
    [{ prefix: 'a-b' }, /metrics.prefix/],
    [{ prefx: 'a_' }, /option "metrics.prefx" is not an option; did you mean "metrics.prefix"\?/]
  ]
  for (const [metrics, message] of cases) {
    const app = Fastify()
    t.after(() => app.close())
    await app.register(jwt, { secret: SECRET })
    await t.rejects(async () => { await app.register(realtime, { metrics } as unknown as RealtimeOptions) }, { code: 'FST_REALTIME_INVALID_OPTION', message }, JSON.stringify(metrics))
  }
  const app = await build(t, { metrics: false })
  await app.ready()
  t.equal(hub(app).metrics, undefined, 'false is off')
})

t.test('without prom-client, asking for metrics fails register saying to install it', async (t) => {
  await t.rejects(loadPromClient(async () => { throw Object.assign(new Error('Cannot find package \'prom-client\''), { code: 'ERR_MODULE_NOT_FOUND' }) }), {
    code: 'FST_REALTIME_MISSING_PEER',
    message: /the metrics option needs the optional peer dependency "prom-client"; install it/
  })
  const prom = await loadPromClient()
  t.equal(typeof prom.Counter, 'function', 'the real one loads')
})

t.test('without prom-client installed (a child process that cannot resolve it), register fails; without metrics it works', { skip: !existsSync(new URL('dist/esm/index.js', root)) && 'dist/ is not built' }, async (t) => {
  // the resolve hook answers "not found" for prom-client, as a missing package does
  const hook = 'export async function resolve (s, c, next) { if (s === "prom-client") { const e = new Error("Cannot find package prom-client"); e.code = "ERR_MODULE_NOT_FOUND"; throw e } return next(s, c) }'
  const preload = `import { register } from "node:module"; register("data:text/javascript,${encodeURIComponent(hook)}")`
  const script = (metrics: boolean): string => `
    import Fastify from 'fastify'
    import realtime from 'fastify-realtime'
    const app = Fastify()
    try {
      await app.register(realtime, { auth: { required: false }, metrics: ${String(metrics)} })
      console.log('registered')
    } catch (err) { console.log(err.code + ': ' + err.message) }
    await app.close()`
  const run = (metrics: boolean): string => spawnSync(process.execPath, ['--import', `data:text/javascript,${encodeURIComponent(preload)}`, '--input-type=module', '-e', script(metrics)],
    { cwd: root, encoding: 'utf8', timeout: 30_000 }).stdout.trim()
  t.match(run(true), /^FST_REALTIME_MISSING_PEER: fastify-realtime: the metrics option needs the optional peer dependency "prom-client"; install it/)
  t.equal(run(false), 'registered', 'prom-client is only loaded when metrics are asked for')
})

t.test('nothing outlives app.close(): no metric in the registry, no timer, no socket, no server', async (t) => {
  const handles = (): Record<string, number> => {
    const counts: Record<string, number> = {}
    for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1
    return counts
  }
  const before = handles()
  const registry = new Registry()
  const app = await buildApp({ after () {} }, { metrics: { registry }, routes: [{ path: '/rt', messages: { echo: { schema: Type.Any(), handler: async (_c, d) => d } } }] })
  const url = await listen(app)
  const a = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'a')}` } })
  await a.request({ type: 'join', room: 'r', id: 1 })
  await a.request({ type: 'echo', data: 1, id: 2 })
  t.ok((await registry.metrics()).length > 0)
  const clientClosed = closed(a.ws)
  await app.close()
  await clientClosed
  t.same(registry.getMetricsAsArray(), [], 'the registry is empty')
  const left = (): string[] => Object.entries(handles()).filter(([kind, n]) => n > (before[kind] ?? 0)).map(([kind]) => kind)
  await until(() => left().length === 0, 2000).catch(() => {})
  t.same(left(), [], 'no more timers, sockets or servers than before the app')
})

t.test('an OpenMetrics registry: the text format, and app.close() still removes every metric', async (t) => {
  const registry = new Registry<OpenMetricsContentType>()
  registry.setContentType(Registry.OPENMETRICS_CONTENT_TYPE)
  const app = await build(t, { heartbeat: false, metrics: { registry }, routes: [{ path: '/rt', messages: { echo: { schema: Type.Any(), handler: (_c, d) => d } } }] })
  const a = await inject(app, '/rt', sign(app, 'a'))
  await a.request({ type: 'echo', data: 1, id: 1 })
  const text = await registry.metrics()
  t.match(text, /^realtime_connects_total\{route="\/rt"\} 1$/m)
  t.match(text, /^realtime_handler_duration_seconds_bucket\{le="\+Inf",route="\/rt",type="echo"\} 1$/m)
  t.match(text, /^realtime_handler_duration_seconds_count\{route="\/rt",type="echo"\} 1$/m)
  t.match(text, /# EOF\n$/)
  await app.close()
  t.same(registry.getMetricsAsArray(), [], 'counters renamed by the OpenMetrics format are removed too')
})

t.test('history_recoveries_total counts real joins with since: recovered, and not (another epoch)', async (t) => {
  const registry = new Registry()
  const app = await buildApp(t, { heartbeat: false, history: { size: 10 }, metrics: { registry }, routes: [{ path: '/rt' }] })
  await app.ready()
  app.realtime.broadcast('news', 'item', { n: 1 })
  app.realtime.broadcast('news', 'item', { n: 2 })
  const { epoch } = await app.realtime.history('news')
  const a = await inject(app, '/rt', sign(app, 'a'))
  const ok = await a.request({ type: 'join', room: 'news', id: 1, data: { since: { offset: 1, epoch } } })
  t.match(ok, { type: 'ack', data: { recovered: true, offset: 2 } })
  const lost = await a.request({ type: 'join', room: 'news', id: 2, data: { since: { offset: 1, epoch: 'another-epoch' } } })
  t.match(lost, { type: 'ack', data: { recovered: false } })
  await a.request({ type: 'join', room: 'news', id: 3 })
  t.equal(await value(registry, 'realtime_history_recoveries_total', { recovered: 'true' }), 1)
  t.equal(await value(registry, 'realtime_history_recoveries_total', { recovered: 'false' }), 1, 'a join without since is no recovery')
  a.ws.terminate()
})
