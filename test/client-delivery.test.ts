// What the client delivers after a reconnect: re-joins and the queue paced
// under the server's rate window, RATE_LIMITED refusals retried, and whatever
// it gives up on reported as a `drop` with its reason.
import { test } from 'tap'
import { sign, sleep } from './helpers.js'
import { ack, chatServer, fakeServer, freePort, nextEvent, opened, record, until, type ChatRoute, type Handled } from './client-helpers.js'
import { createClient, type ClientOptions, type RealtimeClientError } from '../lib/client/index.js'

const FAST = { base: 10, cap: 40 }

function client (t: any, url: string, options: ClientOptions) {
  const c = createClient<ChatRoute>(url, { heartbeat: false, reconnect: FAST, ...options })
  t.after(() => c.close())
  return c
}

test('100 rooms and 20 queued messages: all 20 delivered after a reconnect, against the server defaults', async (t) => {
  const handled: Handled[] = []
  // rateLimit 100 a second (past 200 closed with 4429), maxRoomsPerConnection 100
  const { app, url } = await chatServer(t, { handled })
  const rooms = Array.from({ length: 100 }, (_, i) => `room-${i}`)
  const c = client(t, url, { getToken: () => sign(app, 'alice'), rooms })
  const trouble = record(c, ['error', 'drop'])
  const inAll = (): boolean => app.realtime.connections()[0]?.rooms.size === 100
  await until(inAll, 8000, 'the first joins')

  app.realtime.connections()[0].terminate()
  await nextEvent(c, 'close')
  // still offline: the link is gone and the next attempt waits for its backoff timer
  for (let n = 1; n <= 20; n++) c.send('chat.send', { n }, rooms[n * 5 - 1])
  t.equal(c.queued, 20)
  await opened(c)
  await until(() => handled.length === 20, 10_000, 'the 20 queued messages')
  t.same(handled.map((h) => h.n), Array.from({ length: 20 }, (_, i) => i + 1), 'every one, in order')
  t.ok(handled.every((h) => h.rooms.length === 100), 'each ran with all 100 rooms re-joined')
  t.same(trouble, [], 'no refusal, no drop')
  t.equal(app.realtime.stats().drops, 0, 'the server refused nothing')
  t.equal(c.state, 'open')
})

test('a client paced faster than the server allows: what the server refuses with RATE_LIMITED is retried, in order', async (t) => {
  const handled: Handled[] = []
  const { app, url } = await chatServer(t, { handled, realtime: { rateLimit: { max: 10, windowMs: 1000 } } })
  // 15 a second against a server that takes 10 (and closes past 20)
  const c = client(t, url, { token: sign(app, 'alice'), rateLimit: { max: 15, windowMs: 1000, retries: 3 } })
  const trouble = record(c, ['error', 'drop', 'close'])
  for (let n = 1; n <= 30; n++) c.send('chat.send', { n })
  await opened(c)
  await until(() => handled.length === 30, 10_000, 'all 30')
  t.same(handled.map((h) => h.n), Array.from({ length: 30 }, (_, i) => i + 1), 'in order')
  t.ok(app.realtime.stats().drops > 0, 'the server did refuse some')
  t.same(trouble, [], 'yet nothing was lost, and the link stayed up')
})

test('refused past its retries: a drop with reason rate_limited; a request also rejects RATE_LIMITED', async (t) => {
  const seen: string[] = []
  const server = await fakeServer(t, (link) => {
    link.socket.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      seen.push(`${frame.type}:${frame.id === undefined ? '-' : 'id'}`)
      link.send({ type: 'error', id: frame.id, code: 'RATE_LIMITED', message: 'Too many messages; slow down' })
    })
  })
  const c = client(t, server.url, { reconnect: false, rateLimit: { max: 50, windowMs: 20, retries: 2 } })
  const drops = record(c, ['drop'])
  const errors = record(c, ['error'])
  c.send('chat.send', { n: 1 }) // offline: queued
  const asked = c.request('chat.send', { n: 2 }).catch((err: RealtimeClientError) => err)
  await opened(c)
  t.equal((await asked as RealtimeClientError).code, 'RATE_LIMITED', 'the request rejects once the retries are spent')
  await until(() => drops.length === 2, 2000, 'both dropped')
  t.same(drops.map(([, message, event]) => ({ reason: event.reason, message })), [
    { reason: 'rate_limited', message: { type: 'chat.send', data: { n: 1 } } },
    { reason: 'rate_limited', message: { type: 'chat.send', data: { n: 2 }, id: 1 } }
  ])
  t.same(seen, ['chat.send:id', 'chat.send:id', 'chat.send:id', 'chat.send:id', 'chat.send:id', 'chat.send:id'], 'each sent once and retried twice, with an id the server echoes')
  t.same(errors, [], 'a drop, not an error event')

  // a message written at once carries no id: a refusal of it can only be an error event
  await sleep(100) // past the last retry's hold, so the next send goes out at once
  c.send('chat.send', { n: 3 })
  const err = await nextEvent(c, 'error')
  t.equal(err.code, 'RATE_LIMITED')
})

test('a join refused with RATE_LIMITED is retried, not forgotten like FORBIDDEN', async (t) => {
  let joins = 0
  const server = await fakeServer(t, (link) => {
    link.socket.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      if (frame.type !== 'join') return
      joins++
      if (frame.room === 'busy' && joins <= 2) link.send({ type: 'error', id: frame.id, code: 'RATE_LIMITED', message: 'slow down' })
      else if (frame.room === 'never') link.send({ type: 'error', id: frame.id, code: 'RATE_LIMITED', message: 'slow down' })
      else ack(link, frame, { room: frame.room })
    })
  })
  const c = client(t, server.url, { rateLimit: { windowMs: 20, retries: 3 } })
  const errors = record(c, ['error'])
  t.same(await c.join('busy'), { room: 'busy' }, 'acked on the third try')
  t.same(c.rooms, ['busy'])
  t.same(errors, [])

  const refused = await c.join('never').catch((err: RealtimeClientError) => err)
  t.equal((refused as RealtimeClientError).code, 'RATE_LIMITED', 'past its retries the join rejects')
  t.same(c.rooms.sort(), ['busy', 'never'], 'but the room is kept, to be re-joined on the next connection')

  const link = await server.link(0)
  link.socket.terminate()
  const second = await server.link(1)
  t.same((await second.received.type('join', 'never')).room, 'never', 're-joined after the reconnect')
})

test('a request that timed out while queued offline is dropped from the queue and never sent', async (t) => {
  const handled: Handled[] = []
  const port = await freePort()
  const { app: signer } = await chatServer(t)
  const c = client(t, `ws://127.0.0.1:${port}/chat`, { token: sign(signer, 'alice'), reconnect: { ...FAST, maxConnectFailures: Infinity } })
  const drops = record(c, ['drop'])
  const timedOut = await c.request('chat.send', { n: 1 }, { timeout: 50 }).catch((err: RealtimeClientError) => err)
  t.equal((timedOut as RealtimeClientError).code, 'TIMEOUT')
  t.equal(c.queued, 0, 'taken out of the queue')
  t.same(drops.map(([, message, event]) => [event.reason, message.data]), [['timeout', { n: 1 }]])

  await chatServer(t, { port, handled })
  await opened(c)
  t.same(await c.request('chat.send', { n: 2 }), { got: 2 })
  t.same(handled.map((h) => h.n), [2], 'the timed-out request never reached the server')
})

test('a request pushed out of the full queue rejects with QUEUE_FULL; a queued message the server refuses is an error event', async (t) => {
  const { app, url } = await chatServer(t)
  const c = client(t, url, { token: sign(app, 'alice'), queue: { max: 1 } })
  const drops = record(c, ['drop'])
  const pushedOut = c.request('chat.send', { n: 1 }).catch((err: RealtimeClientError) => err)
  c.send('chat.send', { n: 'bad' } as any)
  t.equal((await pushedOut as RealtimeClientError).code, 'QUEUE_FULL')
  t.same(drops.map(([, , event]) => event.reason), ['queue_full'])
  // the queued message goes out with an id the client picked; the server's refusal of it is still an error event
  const err = await nextEvent(c, 'error')
  t.equal(err.code, 'INVALID_MESSAGE')
})

test('a join with history still queued when the link drops asks again on the next connection', async (t) => {
  // the first connection never answers the re-join of "a": what is queued behind it waits
  const server = await fakeServer(t, (link) => {
    if (link.index === 0) return
    link.socket.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      if (frame.type === 'join') ack(link, frame, { room: frame.room })
    })
  })
  const c = client(t, server.url, { rooms: ['a'] })
  await opened(c)
  const first = await server.link(0)
  await first.received.type('join', 'a')
  const joined = c.join('h', { history: 5 })
  t.equal(c.queued, 1, 'behind the unanswered re-join')
  first.socket.terminate()
  const second = await server.link(1)
  t.same((await second.received.type('join', 'h')).data, { history: 5 })
  t.same(await joined, { room: 'h' })
  t.equal(first.received.frames.filter((f) => f.room === 'h').length, 0, 'never sent on the first link')

  // a join still waiting when the client closes rejects with CLOSED
  second.socket.close()
  const waiting = c.join('w').catch((err: RealtimeClientError) => err)
  await c.close()
  t.equal((await waiting as RealtimeClientError).code, 'CLOSED')
})
