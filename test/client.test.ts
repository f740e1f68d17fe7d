// The client against a real listening server: request/ack, events, rooms,
// the offline queue, the browser code path, jitter bounds and timers.
import { test } from 'tap'
import fc from 'fast-check'
import WebSocket, { WebSocketServer } from 'ws'
import { once } from 'node:events'
import { sign, sleep } from './helpers.js'
import { chatServer, freePort, nextEvent, record, until, type ChatRoute, type Handled } from './client-helpers.js'
import { backoffDelay, createClient, RealtimeClientError, type RealtimeClient } from '../lib/client/index.js'

interface Incoming {
  'chat.message': { from: string, n: number }
  news: { title: string }
}

type Chat = RealtimeClient<{ 'chat.send': { n: number }, fail: Record<string, never>, slow: number, hang: null }, Incoming, any>

async function clientOf (t: any, url: string, token: string | undefined, options: Parameters<typeof createClient>[1] = {}): Promise<Chat> {
  const client = createClient<ChatRoute, Incoming>(url, { token, heartbeat: false, reconnect: { base: 10, cap: 50 }, ...options }) as unknown as Chat
  t.after(() => client.close())
  return client
}

async function opened (client: Chat): Promise<void> {
  if (client.state !== 'open') await nextEvent(client, 'open')
}

async function rejection (promise: Promise<unknown>): Promise<RealtimeClientError> {
  try {
    await promise
  } catch (err) {
    return err as RealtimeClientError
  }
  throw new Error('expected a rejection')
}

test('request resolves with the ack data; on(type) gets (data, envelope); off stops it', async (t) => {
  const { app, url } = await chatServer(t)
  const client = await clientOf(t, url, sign(app, 'alice'))
  await opened(client)
  t.equal(client.state, 'open')
  t.same(await client.request('chat.send', { n: 1 }), { got: 1 }, 'ack data')

  const calls: Array<[unknown, unknown]> = []
  const fn = (data: { title: string }, msg: unknown): void => { calls.push([data, msg]) }
  client.on('news', fn)
  const ack = await client.join('feed')
  t.same(ack.room, 'feed')
  app.realtime.broadcast('feed', 'news', { title: 'one' })
  await until(() => calls.length === 1, 2000, 'news')
  t.same(calls[0], [{ title: 'one' }, { type: 'news', room: 'feed', data: { title: 'one' } }], 'fn(data, whole envelope)')

  client.off('news', fn)
  app.realtime.broadcast('feed', 'news', { title: 'two' })
  t.same(await client.request('chat.send', { n: 2 }), { got: 2 }, 'a later round trip, so the broadcast had time to arrive')
  t.equal(calls.length, 1, 'no call after off()')
})

test('request rejects with the server code (and details), or TIMEOUT', async (t) => {
  const { app, url } = await chatServer(t)
  const client = await clientOf(t, url, sign(app, 'alice'))

  const nope = await rejection(client.request('fail', {}))
  t.ok(nope instanceof RealtimeClientError && nope instanceof Error)
  t.equal(nope.code, 'NOPE')
  t.equal(nope.message, 'not today', 'a RealtimeError message reaches the client')

  const invalid = await rejection(client.request('chat.send', { n: 'one' } as any))
  t.equal(invalid.code, 'INVALID_MESSAGE')
  t.ok(Array.isArray(invalid.details) && invalid.details.length > 0, 'details list the schema failures')

  t.equal((await rejection(client.request('nope' as any, {}))).code, 'UNKNOWN_TYPE')
  t.equal((await rejection(client.request('chat.send', { n: 1 }, { room: 'not-joined' }))).code, 'NOT_IN_ROOM')

  const started = Date.now()
  const timeout = await rejection(client.request('slow', 300, { timeout: 40 }))
  t.equal(timeout.code, 'TIMEOUT')
  t.ok(Date.now() - started < 250, 'rejected at its own timeout, not when the handler finished')
  // the server answers in order: this ack comes after the late one, which the client ignored
  t.same(await client.request('chat.send', { n: 2 }), { got: 2 })
})

test('a server error without a pending request is an error event with the server code', async (t) => {
  const { app, url } = await chatServer(t)
  const client = await clientOf(t, url, sign(app, 'alice'))
  await opened(client)
  const error = nextEvent(client, 'error')
  client.send('chat.send', { n: 'x' } as any)
  const err = await error
  t.equal(err.code, 'INVALID_MESSAGE')
  t.ok(err instanceof RealtimeClientError)
})

test('join: members with presence, presence events, leave, and a refused join', async (t) => {
  const { app, url } = await chatServer(t)
  const alice = await clientOf(t, url, sign(app, 'alice'))
  const bob = await clientOf(t, url, sign(app, 'bob'))

  const first = await alice.join('lobby')
  t.same(first.members?.map((m) => m.sub), ['alice'])
  const presence = nextEvent(alice, 'presence', (data) => data.event === 'join')
  const second = await bob.join('lobby')
  t.same(second.members?.map((m) => m.sub).sort(), ['alice', 'bob'])
  const seen = await presence
  t.equal(seen.member.sub, 'bob', 'alice sees bob join')

  const message = nextEvent(bob, 'chat.message')
  alice.send('chat.send', { n: 7 }, 'lobby')
  t.same(await message, { from: 'alice', n: 7 })

  const left = nextEvent(alice, 'presence', (data) => data.event === 'leave')
  await bob.leave('lobby')
  t.equal((await left).member.sub, 'bob')
  t.same(bob.rooms, [], 'leave forgets the room')
  await bob.leave('lobby')
  t.pass('leaving a room it is not in resolves')

  const refused = await rejection(bob.join('private:x'))
  t.equal(refused.code, 'FORBIDDEN')
  t.notOk(bob.rooms.includes('private:x'), 'a refused room is not re-joined later')
})

test('join while offline resolves once the connection opens; rooms option joins at open', async (t) => {
  const { app, url } = await chatServer(t)
  const client = await clientOf(t, url, sign(app, 'alice'), { rooms: ['a'] })
  t.equal(client.state, 'connecting')
  const joined = client.join('b')
  t.same((await joined).room, 'b')
  t.same(client.rooms.sort(), ['a', 'b'])
  await until(() => app.realtime.rooms().length === 2, 2000, 'rooms on the server')
  t.same(app.realtime.rooms().sort(), ['a', 'b'])
})

test('the bounded queue drops the oldest with a drop event and flushes the rest in order', async (t) => {
  const handled: Handled[] = []
  const { app, url } = await chatServer(t, { handled })
  const client = await clientOf(t, url, sign(app, 'alice'), { queue: { max: 3 } })
  const dropped = record(client, ['drop'])
  t.equal(client.state, 'connecting', 'sends below are queued')
  for (let n = 1; n <= 5; n++) client.send('chat.send', { n })
  t.equal(client.queued, 3)
  t.same(dropped.map(([, message, event]) => ({ reason: event.reason, message })), [
    { reason: 'queue_full', message: { type: 'chat.send', data: { n: 1 } } },
    { reason: 'queue_full', message: { type: 'chat.send', data: { n: 2 } } }
  ], 'oldest first, with the reason')
  await opened(client)
  t.same(await client.request('chat.send', { n: 6 }), { got: 6 })
  t.same(handled.map((h) => h.n), [3, 4, 5, 6], 'flushed in order, before later messages')
  t.equal(client.queued, 0)
})

test('a long offline queue is flushed at the client\'s pace, under the server rate limit, in order, without a refusal', async (t) => {
  const handled: Handled[] = []
  // the server's defaults: 100 messages a second, closed past 200; the client's: 50 in any second
  const { app, url } = await chatServer(t, { handled })
  const client = await clientOf(t, url, sign(app, 'alice'))
  const events = record(client, ['close', 'error', 'drop'])
  for (let n = 1; n <= 150; n++) client.send('chat.send', { n })
  t.equal(client.queued, 150)
  await opened(client)
  t.equal(client.queued, 100, 'the first window took rateLimit.max messages')
  client.send('chat.send', { n: 151 })
  t.equal(client.queued, 101, 'a new send waits behind the queue')
  await until(() => handled.length === 151, 8000, 'every queued message handled')
  t.same(handled.map((h) => h.n), Array.from({ length: 151 }, (_, i) => i + 1), 'in order')
  t.same(events, [], 'never closed, refused or dropped')
  t.equal(app.realtime.stats().drops, 0, 'the server refused nothing')
  t.equal(client.state, 'open')
})

test('closing while a paced flush is under way leaves no timer', async (t) => {
  const { app, url } = await chatServer(t)
  const client = createClient(url, { token: sign(app, 'alice'), heartbeat: false, rateLimit: { max: 1, windowMs: 60_000 } })
  for (let n = 1; n <= 3; n++) client.send('chat.send', { n })
  await opened(client as unknown as Chat)
  t.equal(client.queued, 2)
  const dropped = record(client, ['drop'])
  const before = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  await client.close()
  const after = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  t.ok(after < before, 'the flush timer was cleared')
  t.equal(client.queued, 0)
  t.same(dropped.map(([, message, event]) => [event.reason, message.data.n]), [['closed', 2], ['closed', 3]], 'what was left is reported')
})

test('queue.max 0 keeps nothing while offline', async (t) => {
  const { app, url } = await chatServer(t)
  const client = await clientOf(t, url, sign(app, 'alice'), { queue: { max: 0 } })
  const dropped = record(client, ['drop'])
  client.send('chat.send', { n: 1 })
  t.equal(dropped.length, 1)
  t.equal(client.queued, 0)
})

test('the browser code path: token in the bearer subprotocol, a refusal is a close before open', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const tokens = ['not-a-jwt', sign(app, 'carol')]
  let calls = 0
  const protocols: string[] = []
  // ws's class used as a standard WebSocket (the shape browsers have), recording the protocol the server picked
  class BrowserLike extends WebSocket {
    constructor (address: string, protocols_?: string | string[]) {
      super(address, protocols_)
      this.addEventListener('open', () => { protocols.push(this.protocol) })
    }
  }
  const client = await clientOf(t, url, undefined, {
    WebSocket: BrowserLike as any,
    getToken: () => tokens[Math.min(calls++, tokens.length - 1)]
  })
  const errors = record(client, ['error'])
  await opened(client)
  t.equal(calls, 2, 'getToken was called for each attempt')
  t.equal(upgrades(), 2)
  t.equal(errors.length, 1)
  t.equal(errors[0][1].code, 'CONNECT_FAILED')
  t.equal(errors[0][1].statusCode, undefined, 'a browser sees no HTTP status')
  t.same(protocols, ['bearer'], 'the server answered the bearer subprotocol')
  t.same(app.realtime.connections().map((c) => c.sub), ['carol'])
  t.same(await client.request('chat.send', { n: 1 }), { got: 1 })
})

test('backoff: full jitter within [0, min(cap, base * 2^(attempt-1)))', async (t) => {
  t.equal(backoffDelay(1, { base: 500, cap: 30_000, random: () => 0 }), 0)
  t.equal(backoffDelay(1, { base: 500, cap: 30_000, random: () => 0.5 }), 250)
  t.equal(backoffDelay(4, { base: 500, cap: 30_000, random: () => 0.5 }), 2000)
  t.equal(backoffDelay(50, { base: 500, cap: 30_000, random: () => 0.5 }), 15_000, 'capped')
  t.equal(backoffDelay(5000, { base: 500, cap: 30_000, random: () => 0.999 }), 29_970, 'no overflow at huge attempts')
  t.equal(backoffDelay(2, { base: 500, cap: 30_000, random: () => 1 }), 0, 'an out-of-range random() cannot exceed the bound')
  t.equal(backoffDelay(2, { base: 500, cap: 30_000, random: () => -3 }), 0)
  fc.assert(fc.property(
    fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 10_000 }), fc.integer({ min: 0, max: 100_000 }),
    fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
    (attempt, base, extra, r) => {
      const cap = base + extra
      const delay = backoffDelay(attempt, { base, cap, random: () => r })
      const bound = Math.min(cap, base * 2 ** (attempt - 1))
      return Number.isInteger(delay) && delay >= 0 && delay <= bound && (bound < 1 || delay < bound)
    }
  ))
})

test('reconnecting events carry the attempt and a delay drawn with the injected random', async (t) => {
  const port = await freePort()
  const draws = [0.5, 0.25, 0.999, 0]
  let i = 0
  const client = createClient(`ws://127.0.0.1:${port}/chat`, {
    heartbeat: false,
    reconnect: { base: 8, cap: 20, maxRetries: 4, random: () => draws[i++] }
  })
  t.after(() => client.close())
  const reconnecting = record(client, ['reconnecting'])
  const gaveUp = await nextEvent(client, 'error', (err) => err.code === 'RECONNECT_FAILED')
  t.match(gaveUp.message, /4 retries/)
  t.same(reconnecting.map(([, data]) => data), [
    { attempt: 1, delay: 4 }, // 0.5 * min(20, 8)
    { attempt: 2, delay: 4 }, // 0.25 * min(20, 16)
    { attempt: 3, delay: 19 }, // floor(0.999 * min(20, 32))
    { attempt: 4, delay: 0 }
  ])
  t.equal(client.state, 'closed')
})

test('close() clears every timer the client started', async (t) => {
  const { app, url } = await chatServer(t)
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  await sleep(20)
  const before = timers()
  const client = createClient<ChatRoute>(url, { token: sign(app, 'alice'), heartbeat: { interval: 20, timeout: 1000 } })
  await nextEvent(client, 'open')
  const waiting = client.request('hang', null, { timeout: 5000 }).then(() => undefined, (err: RealtimeClientError) => err)
  t.equal(timers(), before + 2, 'heartbeat interval and request timeout are running')
  await sleep(30)
  t.equal(timers(), before + 3, 'a ping went out, its pong is held behind the hanging handler: the pong timer joins them')
  await client.close()
  t.equal((await waiting)?.code, 'CLOSED', 'a waiting request is rejected on close')
  t.equal(timers(), before, 'no timer of the client is left')
  t.equal(client.state, 'closed')
  t.throws(() => { client.send('chat.send', { n: 1 }) }, { code: 'CLOSED' })
  t.equal((await rejection(client.request('chat.send', { n: 1 }))).code, 'CLOSED')
  t.equal((await rejection(client.join('x'))).code, 'CLOSED')
  await client.close()
  t.pass('close() twice is fine')
})

test('close() during the backoff wait clears the reconnect timer', async (t) => {
  const port = await freePort()
  const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
  const before = timers()
  const client = createClient(`ws://127.0.0.1:${port}/chat`, { heartbeat: false, reconnect: { base: 60_000, cap: 60_000, random: () => 0.5 } })
  const info = await nextEvent(client, 'reconnecting')
  t.equal(info.delay, 30_000)
  t.equal(timers(), before + 1, 'the reconnect timer')
  const request = client.request('x', 1).catch((err) => err)
  t.equal(timers(), before + 2, 'and a queued request timeout')
  await client.close()
  t.equal((await request).code, 'CLOSED')
  t.equal(timers(), before)
  t.equal(client.queued, 0, 'the queue is emptied')
})

test('options are checked and name the bad option', async (t) => {
  const url = 'ws://127.0.0.1:1/chat'
  t.throws(() => createClient(url, { token: '' }), /"token"/)
  t.throws(() => createClient(url, { getToken: 'x' as any }), /"getToken"/)
  t.throws(() => createClient(url, { reconnect: { base: -1 } }), /"reconnect.base"/)
  t.throws(() => createClient(url, { reconnect: { base: 100, cap: 10 } }), /"reconnect.cap"/)
  t.throws(() => createClient(url, { reconnect: { random: 1 as any } }), /"reconnect.random"/)
  t.throws(() => createClient(url, { reconnect: { maxRetries: -1 } }), /"reconnect.maxRetries"/)
  t.throws(() => createClient(url, { reconnect: 'yes' as any }), /"reconnect"/)
  t.throws(() => createClient(url, { heartbeat: { interval: 0 } }), /"heartbeat.interval"/)
  t.throws(() => createClient(url, { heartbeat: { timeout: Number.NaN } }), /"heartbeat.timeout"/)
  t.throws(() => createClient(url, { queue: { max: -1 } }), /"queue.max"/)
  t.throws(() => createClient(url, { queue: { flushBatch: 50 } as any }), /"queue.flushBatch" was replaced by "rateLimit"/)
  t.throws(() => createClient(url, { queue: { flushInterval: 1000 } as any }), /"queue.flushInterval" was replaced by "rateLimit"/)
  t.throws(() => createClient(url, { rateLimit: { max: 0 } }), /"rateLimit.max"/)
  t.throws(() => createClient(url, { rateLimit: { windowMs: -1 } }), /"rateLimit.windowMs"/)
  t.throws(() => createClient(url, { rateLimit: { retries: -1 } }), /"rateLimit.retries"/)
  t.throws(() => createClient(url, { rateLimit: 5 as any }), /"rateLimit"/)
  t.throws(() => createClient(url, { reconnect: { resetAfter: -1 } }), /"reconnect.resetAfter"/)
  t.throws(() => createClient(url, { reconnect: { maxConnectFailures: 0 } }), /"reconnect.maxConnectFailures"/)
  t.throws(() => createClient(url, { requestTimeout: 0 }), /"requestTimeout"/)
  t.throws(() => createClient('ftp://127.0.0.1/chat'), /unsupported url protocol/)
  t.throws(() => createClient('/chat'), TypeError, 'a path needs a page to resolve against')
})

test('http(s) urls map to ws(s)', async (t) => {
  const a = createClient('http://127.0.0.1:1/chat', { reconnect: false, heartbeat: false })
  const b = createClient('https://example.invalid/chat', { reconnect: false, heartbeat: false })
  t.equal(a.url, 'ws://127.0.0.1:1/chat')
  t.equal(b.url, 'wss://example.invalid/chat')
  await Promise.all([a.close(), b.close()])
})

test('a listener that throws does not break the client', async (t) => {
  const { app, url } = await chatServer(t)
  const client = await clientOf(t, url, sign(app, 'alice'))
  const logged: unknown[] = []
  const original = console.error
  console.error = (...args: unknown[]) => { logged.push(args) }
  t.after(() => { console.error = original })
  client.on('open', () => { throw new Error('listener bug') })
  await opened(client)
  t.same(await client.request('chat.send', { n: 1 }), { got: 1 }, 'still works')
  t.equal(logged.length, 1, 'the listener error was reported')
})

test('authenticate() sends a fresh token on the open connection', async (t) => {
  const { app, url } = await chatServer(t)
  const client = await clientOf(t, url, sign(app, 'alice', {}, { expiresIn: 60 }))
  await opened(client)
  await client.authenticate(sign(app, 'alice', {}, { expiresIn: 3600 }))
  t.equal(client.state, 'open')
  const conn = app.realtime.connections()[0]
  t.ok((conn.user.exp as number) - Date.now() / 1000 > 3000, 'the server holds the fresh token')
})

test('getToken that throws is an error event (TOKEN_ERROR) and the attempt is retried', async (t) => {
  const { app, url } = await chatServer(t)
  let calls = 0
  const client = await clientOf(t, url, undefined, {
    getToken: async () => {
      if (calls++ === 0) throw new Error('token service down')
      return sign(app, 'alice')
    }
  })
  const err = await nextEvent(client, 'error')
  t.equal(err.code, 'TOKEN_ERROR')
  t.equal(err.cause.message, 'token service down')
  await opened(client)
  t.equal(calls, 2)
})

test('junk from the server is reported as BAD_FRAME errors and skipped; stray acks and pongs are harmless', async (t) => {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  t.after(() => new Promise((resolve) => wss.close(resolve)))
  await once(wss, 'listening')
  wss.on('connection', (socket) => {
    for (const junk of ['not json', 'null', '42', '{"no":"type"}', '{"type":"ack","id":999}', '{"type":"ack","id":"x"}', '{"type":"pong"}']) socket.send(junk)
    socket.send(Buffer.from('binary'), { binary: true })
    socket.send('{"type":"news","data":{"title":"after the junk"}}')
  })
  const client = createClient(`ws://127.0.0.1:${(wss.address() as { port: number }).port}/`, { heartbeat: false, reconnect: false })
  t.after(() => client.close())
  const seen = record(client, ['news', 'error', 'close'])
  await nextEvent(client, 'news')
  t.same(seen.map(([type, data]) => type === 'error' ? data.code : type), ['BAD_FRAME', 'BAD_FRAME', 'BAD_FRAME', 'BAD_FRAME', 'BAD_FRAME', 'news'],
    'not JSON, null, a number, no type and a binary frame are each an error; the stray ack, the string id and the pong are not')
  t.same(seen[seen.length - 1], ['news', { title: 'after the junk' }], 'the valid message came through')
  t.equal(client.state, 'open')
})
