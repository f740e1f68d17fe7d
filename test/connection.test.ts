import t from 'tap'
import { Type } from '@sinclair/typebox'
import { deflateRawSync } from 'node:zlib'
import type { FastifyInstance } from 'fastify'
import type { RealtimeOptions } from '../lib/index.js'
import type { RealtimeConnection as Connection } from '../lib/connection.js'
import { closeReason, isSendableCloseCode } from '../lib/protocol.js'
import { armExpiry } from '../lib/auth.js'
import { kPending } from '../lib/symbols.js'
import { build, closed, connect, inject, listen, sign, sleep, type Inbox, hub, internal } from './helpers.js'
import { until } from './helpers/wait.js'

t.setTimeout(30_000)

interface CloseRecord { sub: string | null, code: number, reason: string }

/** An app with one route `/rt` that records onClose calls; heartbeat off, grace short. */
async function app (t: Parameters<typeof build>[0], opts: RealtimeOptions = {}, route: Record<string, unknown> = {}): Promise<{ app: FastifyInstance, closes: CloseRecord[], open: (token?: string) => Promise<Inbox> }> {
  const closes: CloseRecord[] = []
  const a = await build(t, {
    heartbeat: false,
    closeGracePeriod: 200,
    ...opts,
    routes: [{
      path: '/rt',
      messages: {
        echo: { schema: Type.Any(), handler: (_conn, data) => data }
      },
      onClose: (conn, code, reason) => { closes.push({ sub: conn.sub, code, reason }) },
      ...route
    }]
  })
  // a real port: injected sockets never see the server end of a close handshake
  const url = await listen(a)
  const open = async (token?: string): Promise<Inbox> => await connect(`${url}/rt`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
  return { app: a, closes, open }
}

/** The error `fn` throws. */
function caught (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

/** The server side of the only (or the sub's) connection. */
function server (a: FastifyInstance, sub?: string): Connection {
  const conns = a.realtime.connections().filter((c) => sub === undefined || c.sub === sub)
  if (conns.length !== 1) throw new Error(`expected one connection, found ${conns.length}`)
  return conns[0] as Connection
}

async function alive (inbox: Inbox): Promise<boolean> {
  inbox.send({ type: 'ping' })
  return (await inbox.type('pong')).type === 'pong'
}

t.test('1003: a binary frame closes the connection; others are untouched', async (t) => {
  const { app: a, closes, open } = await app(t)
  const bad = await open(sign(a, 'bad'))
  const good = await open(sign(a, 'good'))
  const done = closed(bad.ws)
  bad.ws.send(Buffer.from('{"type":"ping"}'), { binary: true })
  t.same(await done, { code: 1003, reason: 'only JSON text frames are accepted' })
  t.ok(await alive(good), 'the other connection still answers')
  await until(() => closes.length === 1)
  t.same(closes, [{ sub: 'bad', code: 1003, reason: 'only JSON text frames are accepted' }], 'onClose saw the code')
  t.equal(a.realtime.stats().connections, 1)
})

t.test('1007: a text frame with invalid UTF-8 closes the connection', async (t) => {
  const { app: a, open } = await app(t)
  const bad = await open(sign(a, 'bad'))
  const good = await open(sign(a, 'good'))
  const done = closed(bad.ws)
  // ws sends a Buffer as a text frame without checking it
  bad.ws.send(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x7d]), { binary: false })
  t.equal((await done).code, 1007)
  t.ok(await alive(good))
})

t.test('1003, 1007 and 1009 through app.injectWS too', async (t) => {
  const { app: a } = await app(t, { maxPayload: 64 })
  const frames: Array<[number, (c: Inbox) => void]> = [
    [1003, (c) => c.ws.send(Buffer.from('{}'), { binary: true })],
    [1007, (c) => c.ws.send(Buffer.from([0xc3, 0x28]), { binary: false })], // an invalid 2-byte sequence
    [1009, (c) => c.send('x'.repeat(65))]
  ]
  for (const [code, send] of frames) {
    const c = await inject(a, '/rt', sign(a, 'x'))
    const done = closed(c.ws)
    send(c)
    t.equal((await done).code, code)
  }
})

t.test('with app.injectWS the server sees a close at once, both ways', async (t) => {
  const { app: a, closes } = await app(t)
  const byClient = await inject(a, '/rt', sign(a, 'client'))
  const started = Date.now()
  byClient.ws.close(4000, 'done')
  await until(() => closes.length === 1, 2000)
  t.same(closes[0], { sub: 'client', code: 4000, reason: 'done' }, 'no 30 s wait for a TCP close that never comes')
  const byServer = await inject(a, '/rt', sign(a, 'server'))
  server(a, 'server').close(4403, 'kicked')
  t.same(await closed(byServer.ws), { code: 4403, reason: 'kicked' })
  await until(() => closes.length === 2, 2000)
  t.same(closes[1], { sub: 'server', code: 4403, reason: 'kicked' })
  t.ok(Date.now() - started < 2000)
  t.equal(a.realtime.stats().connections, 0)
})

t.test('1009: a message over maxPayload closes; one at the limit passes', async (t) => {
  const { app: a, open } = await app(t, { maxPayload: 100 })
  const c = await open(sign(a, 'x'))
  const base = '{"type":"ping","data":""}'
  const atLimit = `{"type":"ping","data":"${'a'.repeat(100 - base.length)}"}`
  t.equal(Buffer.byteLength(atLimit), 100)
  t.ok(await alive(c), 'a small message passes')
  c.send(atLimit)
  t.same(await c.type('pong'), { type: 'pong' }, 'exactly maxPayload bytes pass')
  const done = closed(c.ws)
  c.send(`{"type":"ping","data":"${'a'.repeat(101 - base.length)}"}`)
  t.equal((await done).code, 1009, 'one byte more closes with 1009')
})

t.test('1009 with perMessageDeflate: the limit applies to the inflated size', async (t) => {
  const { app: a } = await app(t, { maxPayload: 1024, perMessageDeflate: true })
  const url = a.listeningOrigin.replace('http', 'ws')
  const c = await connect(`${url}/rt`, { perMessageDeflate: true, headers: { authorization: `Bearer ${sign(a, 'x')}` } })
  t.match(c.ws.extensions, /permessage-deflate/, 'compression was negotiated')
  const small = { type: 'echo', id: 1, data: 'b'.repeat(900) }
  t.same(await c.request(small), { type: 'ack', id: 1, data: small.data }, 'under the limit: echoed (compressed both ways)')
  const big = JSON.stringify({ type: 'echo', id: 2, data: 'b'.repeat(5000) })
  t.ok(deflateRawSync(big).length < 200, 'on the wire it is far under maxPayload')
  const done = closed(c.ws)
  c.send(big)
  t.equal((await done).code, 1009, 'inflated, it is over: 1009')
})

t.test('4401: a token with a short exp closes the connection when it expires, unless refreshed', async (t) => {
  const { app: a, closes, open } = await app(t)
  const expiresAt = Math.ceil((Date.now() + 600) / 1000) * 1000 // 0.6 to 1.6 s away, on a second
  const exp = expiresAt / 1000
  const plain = await open(sign(a, 'plain', { exp }))
  const rearmed = await open(sign(a, 'rearmed', { exp }))
  const renewed = await open(sign(a, 'renewed', { exp }))

  // before the first expiry: a token good for one more second, and one with no exp
  t.same(await rearmed.request({ type: 'auth', id: 'r', data: { token: sign(a, 'rearmed', { exp: exp + 1 }) } }), { type: 'ack', id: 'r' })
  t.same(await renewed.request({ type: 'auth', id: 'r', data: { token: sign(a, 'renewed') } }), { type: 'ack', id: 'r' })
  t.ok(Date.now() < expiresAt, 'both refreshed before the first expiry')

  const plainClosed = closed(plain.ws)
  t.same(await plainClosed, { code: 4401, reason: 'token expired' })
  t.ok(Date.now() >= expiresAt - 5, 'not before exp')
  t.ok(Date.now() < expiresAt + 500, 'promptly at exp')

  t.ok(await alive(rearmed), 'the refreshed one outlived the first exp')
  const rearmedClosed = closed(rearmed.ws)
  t.equal((await rearmedClosed).code, 4401, 're-armed: it closes at the new exp')
  t.ok(Date.now() >= expiresAt + 1000 - 5, 'not before the new exp')

  t.ok(await alive(renewed), 'a token without exp keeps it open')
  t.equal(a.realtime.connections().length, 1)
  t.same(closes.map((c) => [c.sub, c.code]).sort(), [['plain', 4401], ['rearmed', 4401]])
})

t.test('4401: an auth message with a bad token, another sub, or no token closes', async (t) => {
  const { app: a, open } = await app(t)
  const other = (await import('fastify')).default()
  t.after(() => other.close())
  await other.register((await import('@fastify/jwt')).default, { secret: 'a-different-secret-of-enough-length' })
  await other.ready()
  const cases: Array<[string, unknown]> = [
    ['garbage', { token: 'not.a.jwt' }],
    ['wrong signature', { token: sign(other, 'alice') }],
    ['expired', { token: sign(a, 'alice', { exp: Math.floor(Date.now() / 1000) - 10 }) }],
    ['another sub', { token: sign(a, 'mallory') }],
    ['no token', {}],
    ['empty token', { token: '' }],
    ['no data', undefined]
  ]
  for (const [name, data] of cases) {
    const c = await open(sign(a, 'alice'))
    const done = closed(c.ws)
    c.send({ type: 'auth', id: 1, data })
    t.same(await done, { code: 4401, reason: 'invalid token' }, name)
    t.notOk(c.messages.some((m) => m.type === 'ack'), `${name}: no ack`)
  }
  const ok = await open(sign(a, 'alice'))
  t.same(await ok.request({ type: 'auth', id: 2, data: { token: sign(a, 'alice', { role: 'admin' }) } }), { type: 'ack', id: 2 }, 'the same sub is fine')
  t.equal(server(a).user.role, 'admin', 'conn.user is the fresh payload')
})

t.test('the expiry timer waits in whole-second steps of at most a minute (never past 2^31-1 ms)', async (t) => {
  const { app: a, open } = await app(t)
  const days = 30
  const far = await open(sign(a, 'far', { exp: Math.floor(Date.now() / 1000) + days * 86_400 }))
  await sleep(20)
  t.ok(await alive(far), 'a token 30 days away does not close at once')

  const conn = server(a)
  const realSetTimeout = globalThis.setTimeout
  const armed: Array<{ fn: () => void, ms: number }> = []
  const spy = ((fn: () => void, ms: number) => {
    armed.push({ fn, ms })
    return realSetTimeout(() => {}, 0)
  }) as typeof setTimeout
  try {
    globalThis.setTimeout = spy
    armExpiry(conn, Date.now() + 40 * 86_400_000)
  } finally {
    globalThis.setTimeout = realSetTimeout
  }
  t.equal(armed.length, 1)
  t.equal(armed[0].ms, 60_000, 'capped at a minute: far below the 2^31-1 ms that would fire at once')
  try {
    globalThis.setTimeout = spy
    armed[0].fn() // the capped timer fired early
  } finally {
    globalThis.setTimeout = realSetTimeout
  }
  t.equal(armed.length, 2, 'it re-armed instead of closing')
  t.equal(armed[1].ms, 60_000)
  t.ok(conn.open)
  t.ok(await alive(far))

  try {
    globalThis.setTimeout = spy
    armExpiry(conn, Date.now() + 1500)
  } finally {
    globalThis.setTimeout = realSetTimeout
  }
  t.equal(armed[2].ms, 1000, 'a near expiry waits its whole seconds first')
  try {
    globalThis.setTimeout = spy
    armExpiry(conn, Date.now() + 400)
  } finally {
    globalThis.setTimeout = realSetTimeout
  }
  t.ok(armed[3].ms > 300 && armed[3].ms <= 400, 'the last sub-second is waited exactly: the close is not late')
  armExpiry(conn, undefined)
  t.ok(conn.open, 'undefined disarms')

  const done = closed(far.ws)
  armExpiry(conn, Date.now() - 1)
  t.same(await done, { code: 4401, reason: 'token expired' }, 'a past expiry closes at once')
  const count = armed.length
  try {
    globalThis.setTimeout = spy
    armExpiry(conn, Date.now() + 1000)
  } finally {
    globalThis.setTimeout = realSetTimeout
  }
  t.equal(armed.length, count, 'a closed connection arms no timer (a refresh that settles late)')
})

t.test('4403: server code kicks a connection', async (t) => {
  const { app: a, closes, open } = await app(t, {}, {
    messages: {
      'kick.me': { schema: Type.Any(), handler: (conn: Connection) => { conn.close(4403, 'kicked') } }
    }
  })
  const c = await open(sign(a, 'a'))
  const d = await open(sign(a, 'd'))
  await c.request({ type: 'join', room: 'r', id: 1 })
  const done = closed(c.ws)
  server(a, 'a').close(4403, 'kicked')
  t.same(await done, { code: 4403, reason: 'kicked' })
  t.same(await a.realtime.members('r'), [], 'left its rooms at once')
  const dDone = closed(d.ws)
  d.send({ type: 'kick.me' })
  t.same(await dDone, { code: 4403, reason: 'kicked' }, 'from a handler too')
  await until(() => closes.length === 2)
  t.same(closes.map((x) => x.code), [4403, 4403])
})

t.test('4429: a client that keeps exceeding the rate limit is closed after RATE_LIMITED errors', async (t) => {
  const { app: a, open } = await app(t, { rateLimit: { max: 3, windowMs: 60_000 } })
  const c = await open(sign(a, 'a'))
  const done = closed(c.ws)
  for (let i = 1; i <= 7; i++) c.send({ type: 'echo', id: i, data: i })
  t.same(await done, { code: 4429, reason: 'rate limit exceeded' })
  t.same(c.messages.filter((m) => m.type === 'ack').map((m) => m.id), [1, 2, 3], 'up to max pass')
  const errors = c.messages.filter((m) => m.type === 'error')
  t.same(errors.map((m) => [m.code, m.id]), [['RATE_LIMITED', 4], ['RATE_LIMITED', 5], ['RATE_LIMITED', 6]], 'then RATE_LIMITED with the id, up to twice max')
  t.equal(a.realtime.stats().drops >= 4, true, 'limited messages count as drops')
})

t.test('a fresh window lets a limited client go on', async (t) => {
  const { app: a, open } = await app(t, { rateLimit: { max: 2, windowMs: 60 } })
  const c = await open(sign(a, 'a'))
  for (let i = 1; i <= 3; i++) c.send({ type: 'echo', id: i })
  t.equal((await c.next((m) => m.id === 3)).code, 'RATE_LIMITED')
  c.send('{not json')
  t.same(await c.type('error'), { type: 'error', code: 'RATE_LIMITED', message: 'Too many messages; slow down' }, 'no id to echo: none')
  await sleep(80)
  t.same(await c.request({ type: 'echo', id: 4, data: 'ok' }), { type: 'ack', id: 4, data: 'ok' })
})

t.test('1000: normal closes both ways', async (t) => {
  const { app: a, closes, open } = await app(t)
  const byServer = await open(sign(a, 'server'))
  const done = closed(byServer.ws)
  server(a, 'server').close()
  t.same(await done, { code: 1000, reason: '' }, 'conn.close() defaults to 1000')

  const byClient = await open(sign(a, 'client'))
  await byClient.request({ type: 'join', room: 'r', id: 1 })
  byClient.ws.close(1000, 'bye')
  await until(() => closes.length === 2)
  t.same(closes[1], { sub: 'client', code: 1000, reason: 'bye' }, 'onClose gets the client\'s code and reason')
  t.same(a.realtime.rooms(), [], 'the room went with it')
  t.equal(a.realtime.stats().connections, 0)
})

t.test('close() refuses codes a server may not send, before changing anything', async (t) => {
  const { app: a, open } = await app(t)
  const c = await open(sign(a, 'a'))
  await c.request({ type: 'join', room: 'r', id: 1 })
  const conn = server(a)
  for (const code of [1005, 1006, 1004, 999, 1015, 2000, 5000, 4000.5, Number.NaN]) {
    t.throws(() => conn.close(code), { code: 'FST_REALTIME_INVALID_CLOSE_CODE' }, `${code} throws`)
    t.ok(caught(() => conn.close(code)) instanceof TypeError, `${code}: the coded error is a TypeError`)
  }
  t.ok(conn.open, 'still open')
  t.same(conn.rooms, new Set(['r']), 'still in its rooms')
  t.ok(await alive(c), 'still answers')
  for (const code of [1000, 1001, 1003, 1011, 1013, 1014, 3000, 4999]) t.ok(isSendableCloseCode(code), `${code} is sendable`)
})

t.test('a long close reason is cut to 123 bytes on a character boundary', async (t) => {
  t.equal(closeReason('short'), 'short')
  t.equal(closeReason('a'.repeat(123)), 'a'.repeat(123))
  t.equal(closeReason('a'.repeat(200)), 'a'.repeat(123))
  const euros = closeReason('€'.repeat(50)) // 3 bytes each: 41 fit in 123
  t.equal(euros, '€'.repeat(41))
  const mixed = closeReason('a' + '😀'.repeat(40)) // 1 + 4n: 30 emoji fit
  t.equal(mixed, 'a' + '😀'.repeat(30))
  t.ok(Buffer.byteLength(mixed) <= 123)

  const { app: a, open } = await app(t)
  const c = await open(sign(a, 'a'))
  const done = closed(c.ws)
  server(a).close(4403, 'ü'.repeat(100))
  t.same(await done, { code: 4403, reason: 'ü'.repeat(61) }, 'the client gets the cut reason')
})

t.test('after close nothing is sent and nothing is handled', async (t) => {
  const { app: a, open } = await app(t)
  const c = await open(sign(a, 'a'))
  const conn = server(a)
  const done = closed(c.ws)
  conn.close(4403, 'bye')
  const drops = a.realtime.stats().drops
  t.equal(conn.send('late', {}), false, 'a send after close is refused')
  t.equal(a.realtime.stats().drops, drops + 1, 'and counted as a drop')
  const before = a.realtime.stats().messagesIn
  conn.ws.emit('message', Buffer.from('{"type":"ping"}'), false)
  t.equal(a.realtime.stats().messagesIn, before, 'a message that races the close is ignored')
  t.equal(conn.open, false)
  conn.close(1000) // a second close is a no-op
  t.equal((await done).code, 4403)
})

t.test('a socket that ws closed underneath the connection is not written to', async (t) => {
  const { app: a, open } = await app(t)
  const c = await open(sign(a, 'a'))
  const conn = server(a)
  const done = closed(c.ws)
  conn.ws.close(1000)
  const drops = a.realtime.stats().drops
  t.equal(conn.send('late'), false)
  t.equal(a.realtime.stats().drops, drops + 1)
  await done
})

t.test('terminate() drops the socket without a handshake', async (t) => {
  const { app: a, closes, open } = await app(t)
  const c = await open(sign(a, 'a'))
  await c.request({ type: 'join', room: 'r', id: 1 })
  const done = closed(c.ws)
  server(a).terminate()
  t.equal((await done).code, 1006)
  await until(() => closes.length === 1)
  t.same(a.realtime.rooms(), [])
})

t.test('an onClose hook that throws is logged; the server goes on', async (t) => {
  const logs: any[] = []
  const a = await build(t, {
    heartbeat: false,
    routes: [{ path: '/rt', onClose: () => { throw new Error('hook broke') } }]
  }, { logger: { level: 'error', stream: { write: (line: string) => { logs.push(JSON.parse(line)) } } } })
  const url = await listen(a)
  const c = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(a, 'a')}` } })
  c.ws.close()
  await until(() => logs.length > 0)
  t.equal(logs[0].msg, 'onClose hook failed')
  t.equal(logs[0].err.message, 'hook broke')
  t.equal(a.realtime.stats().connections, 0, 'removed all the same')
  const d = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(a, 'b')}` } })
  t.ok(await alive(d))
})

t.test('messages wait, in order and bounded, behind a slow async handler', async (t) => {
  let release: () => void = () => {}
  const { app: a, open } = await app(t, { rateLimit: { max: 3, windowMs: 50 } }, {
    messages: {
      slow: { schema: Type.Any(), handler: async () => { await new Promise<void>((resolve) => { release = resolve }); return 'done' } },
      echo: { schema: Type.Any(), handler: (_c: Connection, data: unknown) => data }
    }
  })
  const c = await open(sign(a, 'a'))
  const start = Date.now()
  c.send({ type: 'slow', id: 's' })
  c.send({ type: 'echo', id: 1, data: 1 })
  c.send({ type: 'echo', id: 2, data: 2 })
  await sleep(70) // next window
  t.ok(Date.now() - start >= 50)
  for (let i = 3; i <= 5; i++) c.send({ type: 'echo', id: i, data: i })
  await c.next((m) => m.id === 5)
  t.same(c.messages, [4, 5].map((id) => ({ type: 'error', id, code: 'RATE_LIMITED', message: 'Too many messages; slow down' })),
    'max messages wait; past that, RATE_LIMITED even in a fresh window')
  release()
  await c.next((m) => m.id === 3)
  t.same(c.messages.filter((m) => m.type === 'ack').map((m) => m.id), ['s', 1, 2, 3], 'the waiting ones ran in the order sent')
})

t.test('a closed connection drops what waits behind a slow handler', async (t) => {
  let release: () => void = () => {}
  let handled = 0
  const { app: a, open } = await app(t, {}, {
    messages: {
      slow: { schema: Type.Any(), handler: async () => { await new Promise<void>((resolve) => { release = resolve }) } },
      count: { schema: Type.Any(), handler: () => { handled++ } }
    }
  })
  const c = await open(sign(a, 'a'))
  c.send({ type: 'slow' })
  c.send({ type: 'count' })
  c.send({ type: 'count' })
  await sleep(20)
  const done = closed(c.ws)
  server(a).close(4403)
  await done
  release()
  await sleep(20)
  t.equal(handled, 0, 'the waiting messages were not handled')
})

t.test('connection fields', async (t) => {
  const { app: a, open } = await app(t, { auth: { required: false } })
  const anon = await open()
  const conn = server(a)
  t.equal(conn.user, null)
  t.equal(conn.sub, null, 'anonymous: no sub')
  t.equal(conn.log, conn.request.log)
  await conn.join('server-side')
  t.same([...conn.rooms], ['server-side'])
  conn.broadcast('server-side', 'hello', { n: 1 })
  t.same(await anon.type('hello'), { type: 'hello', room: 'server-side', data: { n: 1 } })
  t.equal(conn.send('direct', 'x', 'server-side'), true)
  t.same(await anon.type('direct'), { type: 'direct', room: 'server-side', data: 'x' })
  hub(a).sendError(conn as Connection, 'FORBIDDEN')
  t.same(await anon.type('error'), { type: 'error', code: 'FORBIDDEN', message: 'Not allowed to join this room' })
  hub(a).sendError(conn as Connection, 'CUSTOM_CODE', 7)
  t.same(await anon.type('error'), { type: 'error', id: 7, code: 'CUSTOM_CODE', message: 'CUSTOM_CODE' }, 'an unknown code is its own message')
  await conn.leave('server-side')
  t.same([...conn.rooms], [])
})

t.test('frames held when the socket goes away are dropped at once: onClose sees no bytes buffered', async (t) => {
  const seen: number[] = []
  const { app: a } = await app(t, {}, { onClose: (conn: Connection) => { seen.push(internal(conn).ws.bufferedAmount) } })
  // an injected stream reports its close within the turn, before the writer's flush
  await inject(a, '/rt', sign(a, 'gone'))
  const conn = internal(a.realtime.connections()[0])
  conn.send('held')
  t.ok(conn.ws.bufferedAmount > 0, 'held bytes count in bufferedAmount')
  conn.terminate()
  await until(() => seen.length === 1)
  t.same(seen, [0], 'released, not left counted until the next turn')
  t.equal(conn[kPending], undefined)
})
