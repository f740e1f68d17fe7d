import t from 'tap'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import type { RealtimeOptions } from '../lib/index.js'
import { build, connect, inject, listen, sign, sleep, type Inbox } from './helpers.js'

// SPEC section 10 with the in-memory store, through app.injectWS and real sockets.

const chat = {
  path: '/rt',
  messages: {
    say: {
      schema: Type.Object({ text: Type.String() }),
      handler (conn: any, data: { text: string }, msg: { room?: string }) {
        conn.broadcast(msg.room!, 'said', { text: data.text })
        return { ok: true }
      }
    }
  }
}

async function setup (t: Parameters<typeof build>[0], history: RealtimeOptions['history'] = { size: 100 }, more: RealtimeOptions = {}): Promise<FastifyInstance> {
  const app = await build(t, { heartbeat: false, rateLimit: { max: 10_000 }, history, routes: [chat, { path: '/p', presence: true }], ...more })
  await app.ready()
  return app
}

async function client (t: { after: (fn: () => unknown) => void }, app: FastifyInstance, sub: string, path = '/rt'): Promise<Inbox> {
  const inbox = await inject(app, path, sign(app, sub))
  t.after(() => inbox.ws.terminate())
  return inbox
}

/** Join and return the ack's data (throws on an error). */
async function join (inbox: Inbox, room: string, data?: unknown, id: string | number = `join:${room}:${Math.random()}`): Promise<any> {
  const reply = await inbox.request(data === undefined ? { type: 'join', room, id } : { type: 'join', room, id, data })
  if (reply.type !== 'ack') throw new Error(`join failed: ${JSON.stringify(reply)}`)
  return reply.data
}

function thrown (fn: () => unknown): unknown {
  try {
    fn()
  } catch (err) {
    return err
  }
  return undefined
}

/** Offsets of the room envelopes an inbox got, in order. */
const offsets = (inbox: Inbox, type = 'm'): number[] => inbox.messages.filter((m) => m.type === type).map((m) => m.offset)

t.test('offsets start at 1, grow by 1 per broadcast, in the envelope; kept whether or not the room has members', async (t) => {
  const app = await setup(t)
  app.realtime.broadcast('r', 'm', { n: 1 }) // nobody is in r yet
  app.realtime.broadcast('r', 'm')
  const alice = await client(t, app, 'alice')
  const ack = await join(alice, 'r')
  t.same(Object.keys(ack), ['room', 'offset', 'epoch'])
  t.equal(ack.offset, 2, 'the ack carries the latest offset: both were kept')
  t.match(ack.epoch, /^.{1,64}$/)
  app.realtime.broadcast('r', 'm', { n: 3 })
  t.same(await alice.type('m'), { type: 'm', room: 'r', data: { n: 3 }, offset: 3 })
  t.equal(JSON.stringify(alice.messages.at(-1)), '{"type":"m","room":"r","data":{"n":3},"offset":3}', 'offset last, as the SPEC shows it')
  alice.send({ type: 'say', room: 'r', data: { text: 'hi' }, id: 9 })
  t.same(await alice.type('said'), { type: 'said', room: 'r', data: { text: 'hi' }, offset: 4 }, 'conn.broadcast is sequenced too')
  t.same(await alice.next((m) => m.type === 'ack' && m.id === 9), { type: 'ack', id: 9, data: { ok: true } }, 'acks carry no offset')
  const page = await app.realtime.history('r')
  t.same(page.messages, [
    { offset: 1, type: 'm', data: { n: 1 } },
    { offset: 2, type: 'm' },
    { offset: 3, type: 'm', data: { n: 3 } },
    { offset: 4, type: 'said', data: { text: 'hi' } }
  ])
  t.same([page.epoch, page.offset], [ack.epoch, 4])
})

t.test('before any broadcast the ack says offset 0; rooms have their own counters and epochs', async (t) => {
  const app = await setup(t)
  const alice = await client(t, app, 'alice')
  const a = await join(alice, 'a')
  const b = await join(alice, 'b')
  t.equal(a.offset, 0)
  t.not(a.epoch, b.epoch)
  app.realtime.broadcast('a', 'm')
  app.realtime.broadcast('b', 'm')
  app.realtime.broadcast('a', 'm')
  await alice.next((m) => m.room === 'a' && m.offset === 2)
  t.same(alice.messages.filter((m) => m.type === 'm').map((m) => `${m.room}${m.offset}`), ['a1', 'b1', 'a2'])
})

t.test('presence events, errors, send and sendToUser carry no offset and are not kept', async (t) => {
  const app = await setup(t)
  const alice = await client(t, app, 'alice', '/p')
  const bob = await client(t, app, 'bob', '/p')
  await join(alice, 'r')
  await join(bob, 'r')
  const presence = await alice.type('presence')
  t.notOk('offset' in presence, 'presence')
  const conn = app.realtime.connections().find((c) => c.sub === 'alice')!
  app.realtime.send(conn.id, 'direct', { x: 1 })
  conn.send('direct2', { x: 2 }, 'r')
  app.realtime.sendToUser('alice', 'note', { x: 3 })
  alice.send({ type: 'nope', id: 1 })
  for (const type of ['direct', 'direct2', 'note', 'error']) t.notOk('offset' in await alice.type(type), type)
  t.same((await app.realtime.history('r')).messages, [], 'none of them was kept')
  t.equal((await app.realtime.history('r')).offset, 0)
})

t.test('rooms outside history.rooms: no offset, no history, a plain join ack', async (t) => {
  const app = await setup(t, { size: 10, rooms: (room) => room.startsWith('chat:') })
  const alice = await client(t, app, 'alice')
  t.same(await join(alice, 'lobby', { history: 5 }), { room: 'lobby' }, 'join data to a room without history: acked as today')
  t.same(await join(alice, 'lobby', { since: { offset: 3, epoch: 'e' } }), { room: 'lobby' })
  app.realtime.broadcast('lobby', 'm')
  t.same(await alice.type('m'), { type: 'm', room: 'lobby' })
  t.ok(thrown(() => app.realtime.history('lobby')) instanceof TypeError, 'a TypeError')
  t.throws(() => app.realtime.history('lobby'), { code: 'FST_REALTIME_NO_HISTORY' })
  const ack = await join(alice, 'chat:1')
  t.same(Object.keys(ack), ['room', 'offset', 'epoch'])
})

t.test('with history off, a join with valid data is acked as today and history() throws', async (t) => {
  const app = await setup(t, false)
  const alice = await client(t, app, 'alice')
  t.same(await join(alice, 'r', { history: 5 }), { room: 'r' })
  t.throws(() => app.realtime.history('r'), { code: 'FST_REALTIME_NO_HISTORY' })
  app.realtime.broadcast('r', 'm')
  t.same(await alice.type('m'), { type: 'm', room: 'r' })
})

t.test('join with since: the missed messages first, in order, then the ack with recovered true; then live ones', async (t) => {
  const app = await setup(t)
  const alice = await client(t, app, 'alice')
  const { epoch } = await join(alice, 'r')
  for (let i = 1; i <= 5; i++) app.realtime.broadcast('r', 'm', i)
  await alice.next((m) => m.offset === 5)
  const bob = await client(t, app, 'bob')
  const reply = await bob.request({ type: 'join', room: 'r', id: 1, data: { since: { offset: 2, epoch } } })
  t.same(reply, { type: 'ack', id: 1, data: { room: 'r', offset: 5, epoch, recovered: true } })
  t.same(bob.messages.map((m) => m.type === 'ack' ? 'ack' : m.offset), [3, 4, 5, 'ack'], 'replay before the ack')
  t.same(bob.messages[0], { type: 'm', room: 'r', data: 3, offset: 3 }, 'replayed as ordinary room envelopes')
  app.realtime.broadcast('r', 'm', 6)
  await bob.next((m) => m.offset === 6)
  t.same(offsets(bob), [3, 4, 5, 6])
  t.same(await join(bob, 'r', { since: { offset: 6, epoch } }), { room: 'r', offset: 6, epoch, recovered: true }, 'nothing missed: recovered, nothing sent')
})

t.test('recovered false sends nothing: another epoch, beyond the latest, gone by size, gone by ttl', async (t) => {
  const app = await setup(t, { size: 3, ttl: 1000 })
  const alice = await client(t, app, 'alice')
  const { epoch } = await join(alice, 'r')
  for (let i = 1; i <= 6; i++) app.realtime.broadcast('r', 'm', i)
  const cases: Array<[string, unknown]> = [
    ['another epoch', { offset: 5, epoch: 'not-this-one' }],
    ['beyond the latest', { offset: 7, epoch }],
    ['gone by size', { offset: 2, epoch }]
  ]
  for (const [why, since] of cases) {
    const bob = await client(t, app, 'bob')
    t.same(await join(bob, 'r', { since }), { room: 'r', offset: 6, epoch, recovered: false }, why)
    t.same(bob.messages.map((m) => m.type), ['ack'], `${why}: nothing but the ack`)
    bob.ws.terminate()
  }
  const bob = await client(t, app, 'bob')
  t.same(await join(bob, 'r', { since: { offset: 3, epoch } }), { room: 'r', offset: 6, epoch, recovered: true }, 'the last 3 are kept')
  await sleep(1100) // every message is older than ttl now
  const carol = await client(t, app, 'carol')
  t.same(await join(carol, 'r', { since: { offset: 5, epoch } }), { room: 'r', offset: 6, epoch, recovered: false }, 'gone by ttl')
  t.same(carol.messages.map((m) => m.type), ['ack'])
  t.same((await app.realtime.history('r')).messages, [], 'expired messages are not read')
  app.realtime.broadcast('r', 'm', 7)
  t.same((await app.realtime.history('r')).messages.map((m) => m.offset), [7], 'expiry removed messages, not the counter')
})

t.test('join with history: n sends the last n kept (a chat\'s first screen), then the ack', async (t) => {
  const app = await setup(t, { size: 4 })
  for (let i = 1; i <= 6; i++) app.realtime.broadcast('r', 'm', i)
  const alice = await client(t, app, 'alice')
  const ack = await join(alice, 'r', { history: 2 })
  t.same(alice.messages.map((m) => m.offset ?? m.type), [5, 6, 'ack'])
  t.same(Object.keys(ack), ['room', 'offset', 'epoch'], 'no recovered without since')
  const bob = await client(t, app, 'bob')
  await join(bob, 'r', { history: 10_000 })
  t.same(offsets(bob), [3, 4, 5, 6], 'never more than size')
})

t.test('bad join data is INVALID_MESSAGE with details, and the join does not happen', async (t) => {
  const app = await setup(t)
  const alice = await client(t, app, 'alice')
  const bad: unknown[] = [
    null, [], 'since', 5, {}, { history: 0 }, { history: 10_001 }, { history: 1.5 }, { history: '5' },
    { since: { offset: 1 } }, { since: { epoch: 'e' } }, { since: { offset: -1, epoch: 'e' } }, { since: { offset: 1.5, epoch: 'e' } },
    { since: { offset: 1, epoch: '' } }, { since: { offset: 1, epoch: 'x'.repeat(65) } }, { since: { offset: 1, epoch: 5 } },
    { since: { offset: 1, epoch: 'e', extra: 1 } }, { since: { offset: 1, epoch: 'e' }, history: 5 }, { history: 5, more: true }, { since: null }
  ]
  for (const data of bad) {
    const reply = await alice.request({ type: 'join', room: 'r', id: 7, data })
    t.equal(reply.code, 'INVALID_MESSAGE', JSON.stringify(data))
    t.ok(Array.isArray(reply.details) && reply.details.length > 0 && reply.details.every((d: any) => typeof d.path === 'string' && typeof d.message === 'string'), 'with details')
  }
  t.same(app.realtime.rooms(), [], 'no join happened')
  t.same(await app.realtime.members('r'), [])
  t.same(await join(alice, 'r', { since: { offset: 0, epoch: 'e'.repeat(64) } }), { room: 'r', offset: 0, epoch: (await app.realtime.history('r')).epoch, recovered: false }, 'the edges are valid')
  t.ok(await join(alice, 'r', { history: 10_000 }))
})

t.test('a join to a room the connection is in replays what it asks for again, and acks again', async (t) => {
  const app = await setup(t)
  const alice = await client(t, app, 'alice')
  const { epoch } = await join(alice, 'r')
  for (let i = 1; i <= 3; i++) app.realtime.broadcast('r', 'm', i)
  await alice.next((m) => m.offset === 3)
  t.same(await join(alice, 'r', { since: { offset: 1, epoch } }), { room: 'r', offset: 3, epoch, recovered: true })
  t.same(await join(alice, 'r', { history: 1 }), { room: 'r', offset: 3, epoch })
  t.same(await join(alice, 'r'), { room: 'r', offset: 3, epoch })
  app.realtime.broadcast('r', 'm', 4)
  await alice.next((m) => m.offset === 4)
  t.same(alice.messages.map((m) => m.offset ?? m.type), ['ack', 1, 2, 3, 2, 3, 'ack', 3, 'ack', 'ack', 4])
})

t.test('the epoch changes when the instance restarts with the in-memory store', async (t) => {
  const first = await setup(t)
  first.realtime.broadcast('r', 'm')
  const before = (await first.realtime.history('r')).epoch
  await first.close()
  const second = await setup(t)
  const alice = await client(t, second, 'alice')
  const ack = await join(alice, 'r', { since: { offset: 1, epoch: before } })
  t.not(ack.epoch, before)
  t.same([ack.offset, ack.recovered], [0, false], 'the app must reload: its state is from a lost history')
})

t.test('app.realtime.history(): since and limit; coded TypeErrors for a bad room or query', async (t) => {
  const app = await setup(t, { size: 5 })
  for (let i = 1; i <= 8; i++) app.realtime.broadcast('r', 'm', i)
  const at = async (opts?: Parameters<typeof app.realtime.history>[1]): Promise<number[]> => (await app.realtime.history('r', opts)).messages.map((m) => m.offset)
  t.same(await at(), [4, 5, 6, 7, 8], 'everything kept, oldest first')
  t.same(await at({ limit: 2 }), [7, 8], 'without since: the last `limit`')
  t.same(await at({ since: 5 }), [6, 7, 8])
  t.same(await at({ since: 0, limit: 2 }), [4, 5], 'with since: the first `limit` after it')
  t.same(await at({ since: 8 }), [])
  t.same(await at({ since: 100 }), [])
  t.equal((await app.realtime.history('new-room')).offset, 0)
  for (const room of ['', 'x'.repeat(129), 'a\u0000b', '\ud800', 'a\u202eb', undefined, 5]) {
    t.ok(thrown(() => app.realtime.history(room as any)) instanceof TypeError, 'a TypeError')
    t.throws(() => app.realtime.history(room as any), { code: 'FST_REALTIME_INVALID_ROOM' }, `room ${JSON.stringify(room)}`)
  }
  for (const [opts, name] of [[{ since: -1 }, 'since'], [{ since: 1.5 }, 'since'], [{ since: '3' }, 'since'], [{ limit: 0 }, 'limit'], [{ limit: 10_001 }, 'limit'], [{ limit: 2.5 }, 'limit'], [null, 'options']] as const) {
    t.ok(thrown(() => app.realtime.history('r', opts as any)) instanceof TypeError, 'a TypeError')
    t.throws(() => app.realtime.history('r', opts as any), { code: 'FST_REALTIME_INVALID_HISTORY_QUERY', message: new RegExp(`"${name}"`) })
  }
})

t.test('an idle room nobody is in is freed after ttl (its next message starts a new epoch); a room with a member keeps its epoch', async (t) => {
  const app = await setup(t, { size: 10, ttl: 1000 })
  app.realtime.broadcast('idle', 'm')
  app.realtime.broadcast('busy', 'm')
  const alice = await client(t, app, 'alice')
  const { epoch: busy } = await join(alice, 'busy')
  const idle = (await app.realtime.history('idle')).epoch
  const started = Date.now()
  while ((await app.realtime.history('idle')).epoch === idle) {
    if (Date.now() - started > 10_000) throw new Error('the idle room was never freed')
    await sleep(100)
  }
  t.pass('the idle room was freed')
  t.equal((await app.realtime.history('busy')).epoch, busy, 'the room with a member was not')
  t.equal((await app.realtime.history('busy')).offset, 1)
})

/**
 * The hard one: broadcasts keep coming (one per event-loop turn) while a client
 * leaves and joins again with `since`, through an async canJoin, 40 times. Its
 * stream must hold every offset from its first join on, once, in order.
 */
t.test('every offset after since, exactly once, in order, across many re-joins under a broadcast loop', async (t) => {
  const app = await build(t, {
    heartbeat: false,
    rateLimit: { max: 100_000 },
    history: { size: 10_000 },
    routes: [{ path: '/rt', canJoin: async () => { await sleep(Math.random() * 5); return true } }]
  })
  const url = await listen(app)
  let running = true
  let sent = 0
  const pump = (): void => {
    if (!running) return
    app.realtime.broadcast('r', 'm', ++sent)
    setImmediate(pump)
  }
  const alice = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'alice')}` } })
  t.after(() => { running = false; alice.ws.terminate() })
  const first = await join(alice, 'r')
  pump()
  const seen: number[] = []
  let expectedNext = first.offset + 1
  const problems: string[] = []
  let inRoom = true
  let lastAck = first
  alice.ws.on('message', (raw) => {
    const m = JSON.parse(raw.toString())
    if (m.type === 'm') {
      if (!inRoom && m.offset !== expectedNext) return
      if (m.offset !== expectedNext) problems.push(`got ${m.offset}, expected ${expectedNext} (last ack ${JSON.stringify(lastAck)})`)
      seen.push(m.offset)
      expectedNext = m.offset + 1
    }
  })
  for (let round = 0; round < 40; round++) {
    await sleep(Math.random() * 8)
    inRoom = false
    await alice.request({ type: 'leave', room: 'r', id: `leave-${round}` })
    await sleep(Math.random() * 8)
    // everything after the last offset held is replayed, then the ack, then live: the stream goes on at expectedNext
    lastAck = await join(alice, 'r', { since: { offset: expectedNext - 1, epoch: first.epoch } }, `join-${round}`)
    inRoom = true
    if (lastAck.recovered !== true) problems.push(`round ${round}: not recovered`)
  }
  running = false
  const last = sent
  const caughtUp = (): boolean => expectedNext > last
  for (let waited = 0; !caughtUp() && waited < 10_000; waited += 10) await sleep(10)
  t.same(problems, [], 'no gap, no duplicate, no reordering')
  t.same(seen, Array.from({ length: last - first.offset }, (_, i) => first.offset + 1 + i), `all ${last} offsets, once each, in order`)
})
