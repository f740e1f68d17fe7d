// The client's reconnect logic against real servers that die, refuse and come back.
import { test } from 'tap'
import { hub, sign, sleep } from './helpers.js'
import { chatRoute, chatServer, freePort, nextEvent, opened, record, until, type ChatRoute, type Handled } from './client-helpers.js'
import { createClient, type ClientOptions } from '../lib/client/index.js'

const FAST = { base: 10, cap: 40 }

function client (t: any, url: string, options: ClientOptions) {
  const c = createClient<ChatRoute>(url, { heartbeat: false, reconnect: FAST, ...options })
  t.after(() => c.close())
  return c
}

test('server killed mid-stream and restarted on the same port: rooms re-joined before the queue flush, queue in order', async (t) => {
  const handled: Handled[] = []
  const first = await chatServer(t, { handled })
  let tokens = 0
  const c = client(t, first.url, { getToken: () => { tokens++; return sign(first.app, 'alice') }, rooms: ['r1'] })
  const events = record(c, ['open', 'close', 'reconnecting'])
  const failed = record(c, ['error'])
  await nextEvent(c, 'open')
  await c.join('r2')

  // a stream of messages, the server dies in the middle of it
  for (let n = 1; n <= 3; n++) c.send('chat.send', { n }, 'r1')
  await until(() => handled.length === 3, 2000, 'the first three')
  for (const conn of first.app.realtime.connections()) conn.terminate()
  await first.app.close()
  await nextEvent(c, 'reconnecting')
  t.not(c.state, 'open')
  for (let n = 4; n <= 8; n++) c.send('chat.send', { n }, n % 2 === 0 ? 'r1' : 'r2')
  t.equal(c.queued, 5, 'queued while the server is down')
  await sleep(60) // a few failed attempts against the closed port

  const second = await chatServer(t, { port: first.port, handled })
  await opened(c)
  await until(() => handled.length === 8, 3000, 'the queued five')
  t.same(handled.map((h) => h.n), [1, 2, 3, 4, 5, 6, 7, 8], 'nothing lost, nothing reordered')
  for (const h of handled.slice(3)) t.same(h.rooms, ['r1', 'r2'], `message ${h.n} ran with both rooms re-joined`)
  t.same(second.app.realtime.rooms().sort(), ['r1', 'r2'])
  const opens = events.filter(([type]) => type === 'open').length
  t.ok(failed.length >= 1 && failed.every(([, err]) => err.code === 'CONNECT_FAILED'), 'attempts failed while the port was closed')
  t.equal(tokens, opens + failed.length, 'getToken was called once for every attempt')
  t.equal(first.upgrades() + second.upgrades(), opens, 'every upgrade that reached a server opened')
  const kinds = events.map(([type]) => type)
  t.same(kinds.slice(0, 3), ['open', 'close', 'reconnecting'])
  t.equal(kinds[kinds.length - 1], 'open')
  t.equal(events[1][1].code, 1006, 'terminated: an abnormal close')
})

test('a graceful app.close() (1001) reconnects too, and messages flow both ways after', async (t) => {
  const first = await chatServer(t)
  const token = sign(first.app, 'alice')
  const alice = client(t, first.url, { token, rooms: ['lobby'] })
  await nextEvent(alice, 'open')
  const closed = nextEvent(alice, 'close')
  await first.app.close()
  t.same(await closed, { code: 1001, reason: 'server shutting down' })
  const second = await chatServer(t, { port: first.port })
  const bob = client(t, second.url, { token: sign(second.app, 'bob'), rooms: ['lobby'] })
  await Promise.all([opened(alice), opened(bob)])
  // two sockets: wait until the server handled both joins before bob talks
  await until(() => second.app.realtime.connections().filter((conn) => conn.rooms.has('lobby')).length === 2, 2000, 'both in lobby')
  const got = nextEvent(alice, 'chat.message')
  t.same(await bob.request('chat.send', { n: 5 }, { room: 'lobby' }), { got: 5 })
  t.same(await got, { from: 'bob', n: 5 })
})

test('503 (server full) is retried until a slot frees', async (t) => {
  const { app, url } = await chatServer(t, { realtime: { maxConnections: 1 } })
  const holder = client(t, url, { token: sign(app, 'holder') })
  await nextEvent(holder, 'open')
  const c = client(t, url, { token: sign(app, 'alice') })
  const refused = await nextEvent(c, 'error')
  t.equal(refused.code, 'CONNECT_FAILED')
  t.equal(refused.statusCode, 503)
  await nextEvent(c, 'reconnecting')
  await holder.close()
  await opened(c)
  t.equal(c.state, 'open')
})

test('network failures are retried until the server appears', async (t) => {
  const port = await freePort()
  const url = `ws://127.0.0.1:${port}/chat`
  const { app: signer } = await chatServer(t)
  // a fixed token stops after 10 failed attempts in a row: not what this test is about
  const c = client(t, url, { token: sign(signer, 'alice'), reconnect: { ...FAST, maxConnectFailures: Infinity } })
  const failures = record(c, ['error'])
  await nextEvent(c, 'reconnecting', (info) => info.attempt >= 2)
  t.ok(failures.every(([, err]) => err.code === 'CONNECT_FAILED' && err.statusCode === undefined), 'connection refused, no HTTP status')
  t.ok(failures.length >= 2)
  const { app } = await chatServer(t, { port })
  await opened(c)
  t.same(app.realtime.connections().map((conn) => conn.sub), ['alice'])
})

test('401 with a fixed token: no reconnect, UNAUTHORIZED', async (t) => {
  const { url, upgrades } = await chatServer(t)
  const c = client(t, url, { token: 'bad.token.here' })
  const errors = record(c, ['error', 'reconnecting'])
  const final = await nextEvent(c, 'error', (err) => err.code === 'UNAUTHORIZED')
  t.ok(final)
  t.equal(c.state, 'closed')
  await sleep(80)
  t.equal(upgrades(), 1, 'one attempt only')
  t.same(errors.map(([type, data]) => [type, data.code ?? data.statusCode]), [['error', 'CONNECT_FAILED'], ['error', 'UNAUTHORIZED']])
  t.equal(errors[0][1].statusCode, 401)
})

test('401, then getToken gives a good token: it reconnects', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const tokens = ['bad.token.here', sign(app, 'alice')]
  let calls = 0
  const c = client(t, url, { getToken: async () => tokens[calls++] })
  await nextEvent(c, 'open')
  t.equal(calls, 2)
  t.equal(upgrades(), 2)
})

test('401, then getToken gives the same refused token or none: it stops', async (t) => {
  const { url, upgrades } = await chatServer(t)
  let calls = 0
  const same = client(t, url, { getToken: () => { calls++; return 'bad.token.here' } })
  await nextEvent(same, 'error', (err) => err.code === 'UNAUTHORIZED')
  t.equal(calls, 2, 'asked again, got the same token')
  t.equal(upgrades(), 1, 'and did not try it twice')
  t.equal(same.state, 'closed')

  let anonCalls = 0
  const none = client(t, url, { getToken: () => { anonCalls++; return undefined } })
  await nextEvent(none, 'error', (err) => err.code === 'UNAUTHORIZED')
  t.equal(anonCalls, 2)
  t.equal(upgrades(), 2)
})

test('4401 after open: reconnect only with a new token from getToken', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const issued = [sign(app, 'alice', { v: 1 }), sign(app, 'alice', { v: 2 })]
  let calls = 0
  const c = client(t, url, { getToken: () => issued[calls++] })
  await nextEvent(c, 'open')
  const events = record(c, ['close', 'reconnecting', 'open', 'error'])
  app.realtime.connections()[0].close(4401, 'token expired')
  await nextEvent(c, 'open')
  t.same(events.map(([type]) => type), ['close', 'reconnecting', 'open'])
  t.same(events[0][1], { code: 4401, reason: 'token expired' })
  t.equal(app.realtime.connections()[0].user.v, 2, 'connected with the new token')

  // getToken has nothing left: the next 4401 is final
  app.realtime.connections()[0].close(4401, 'token expired')
  const final = await nextEvent(c, 'error', (err) => err.code === 'UNAUTHORIZED')
  t.ok(final)
  t.equal(c.state, 'closed')
  t.equal(upgrades(), 2)
  t.equal(calls, 3)
})

test('4401 with a fixed token: no reconnect', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const c = client(t, url, { token: sign(app, 'alice') })
  await nextEvent(c, 'open')
  app.realtime.connections()[0].close(4401, 'token expired')
  await nextEvent(c, 'error', (err) => err.code === 'UNAUTHORIZED')
  await sleep(60)
  t.equal(upgrades(), 1)
  t.equal(c.state, 'closed')
})

test('4403 (kicked) is final', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const c = client(t, url, { getToken: () => sign(app, 'mallory') })
  await nextEvent(c, 'open')
  app.realtime.connections()[0].close(4403, 'banned')
  const err = await nextEvent(c, 'error', (e) => e.code === 'KICKED')
  t.match(err.message, /banned/)
  await sleep(60)
  t.equal(upgrades(), 1)
  t.equal(c.state, 'closed')
})

test('heartbeat: no pong within the timeout is a dead link, and it reconnects', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const c = client(t, url, { token: sign(app, 'alice'), heartbeat: { interval: 20, timeout: 40 }, rooms: ['r'] })
  await nextEvent(c, 'open')
  // stop the server side of the socket from reading: pings go unanswered, as on a dead link
  hub(app).connections()[0].ws.pause()
  const closed = await nextEvent(c, 'close', () => true, 2000)
  t.same(closed, { code: 1006, reason: 'heartbeat timeout' })
  await opened(c)
  t.equal(upgrades(), 2)
  await until(() => app.realtime.connections().some((conn) => conn.rooms.has('r')), 2000, 'the re-join')
})

test('heartbeat: a live link answers every ping and stays up', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const c = client(t, url, { token: sign(app, 'alice'), heartbeat: { interval: 15, timeout: 200 } })
  await nextEvent(c, 'open')
  const closes = record(c, ['close'])
  await sleep(200)
  t.equal(closes.length, 0)
  t.equal(upgrades(), 1)
  t.ok(app.realtime.stats().messagesIn >= 5, 'pings went out')
})

test('maxRetries bounds the attempts; reconnect: false makes one', async (t) => {
  const port = await freePort()
  const url = `ws://127.0.0.1:${port}/chat`
  const bounded = client(t, url, { reconnect: { ...FAST, maxRetries: 2 } })
  const seen = record(bounded, ['reconnecting', 'error'])
  await nextEvent(bounded, 'error', (err) => err.code === 'RECONNECT_FAILED')
  t.same(seen.map(([type, data]) => type === 'error' ? data.code : data.attempt), ['CONNECT_FAILED', 1, 'CONNECT_FAILED', 2, 'CONNECT_FAILED', 'RECONNECT_FAILED'])

  const once = client(t, url, { reconnect: false })
  const err = await nextEvent(once, 'error', (e) => e.code === 'RECONNECT_FAILED')
  t.match(err.message, /reconnect is off/)
  t.equal(once.state, 'closed')
})

test('close() while connecting ends it for good', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const c = createClient(url, { token: sign(app, 'alice'), heartbeat: false })
  const events = record(c, ['open', 'close', 'reconnecting', 'error'])
  await c.close()
  await sleep(50)
  t.equal(c.state, 'closed')
  t.same(events, [], 'no event after close()')
  t.ok(upgrades() <= 1)
  t.equal(app.realtime.connections().length, 0)
})

test('close() on an open connection sends the code and emits close once', async (t) => {
  const { app, url } = await chatServer(t)
  const reasons: Array<[number, string]> = []
  const c = client(t, url, { token: sign(app, 'alice') })
  await nextEvent(c, 'open')
  hub(app).connections()[0].ws.once('close', (code, reason) => { reasons.push([code, reason.toString()]) })
  const closes = record(c, ['close', 'reconnecting'])
  await c.close(4000, 'bye')
  await until(() => reasons.length === 1, 2000, 'the server side close')
  t.same(reasons, [[4000, 'bye']])
  t.same(closes, [['close', { code: 4000, reason: 'bye' }]])
})

test('a room the restarted server refuses is dropped, with an error event', async (t) => {
  const first = await chatServer(t)
  const c = client(t, first.url, { token: sign(first.app, 'alice'), rooms: ['keep', 'vip'] })
  await nextEvent(c, 'open')
  await until(() => first.app.realtime.rooms().length === 2, 2000, 'both joined')
  await first.app.close()
  // the new deployment no longer lets anyone into "vip"
  const strict = { ...chatRoute(), canJoin: (_conn: unknown, room: string) => room !== 'vip' }
  const second = await chatServer(t, { port: first.port, realtime: { routes: [strict] } })
  const refused = await nextEvent(c, 'error', (err) => err.code === 'FORBIDDEN')
  t.ok(refused)
  t.same(c.rooms, ['keep'])
  t.same(second.app.realtime.rooms(), ['keep'])
})
