import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { MemoryAdapter } from '../lib/index.js'
import type { Connection, Member } from '../lib/index.js'
import { connect } from '../lib/testing/index.js'
import { bearer, connect as connectPort, inject, listen, sign, sleep } from './helpers.js'
import type { Inbox } from './helpers.js'
import { logCapture, settle, setup, until } from './protocol-helpers.js'

const routes = [
  { path: '/p', messages: {}, presence: true },
  { path: '/n', messages: {} }
]

async function client (app: FastifyInstance, path: string, sub?: string): Promise<{ inbox: Inbox, conn: Connection }> {
  const before = new Set(app.realtime.connections())
  const inbox = await inject(app, path, sub === undefined ? undefined : sign(app, sub))
  const conn = app.realtime.connections().find((c) => !before.has(c))!
  return { inbox, conn }
}

function presence (inbox: Inbox): any[] {
  return inbox.messages.filter((m) => m.type === 'presence')
}

async function gone (app: FastifyInstance, count: number): Promise<void> {
  for (let i = 0; i < 100 && app.realtime.connections().length > count; i++) await sleep(5)
}

t.test('presence: join and leave events to the other members; the join ack lists members', async (t) => {
  const app = await setup(t, { routes })
  const a = await client(app, '/p', 'alice')
  const b = await client(app, '/p', 'bob')
  const alice = { id: a.conn.id, sub: 'alice' }
  const bob = { id: b.conn.id, sub: 'bob' }

  t.same(await a.inbox.request({ type: 'join', room: 'lobby', id: 1 }), { type: 'ack', id: 1, data: { room: 'lobby', members: [alice], total: 1 } })
  t.same(await b.inbox.request({ type: 'join', room: 'lobby', id: 1 }), { type: 'ack', id: 1, data: { room: 'lobby', members: [alice, bob], total: 2 } })
  t.same(await a.inbox.type('presence'), { type: 'presence', room: 'lobby', data: { event: 'join', member: bob } })
  await settle(b.inbox)
  t.same(presence(b.inbox), [], 'the joiner gets no event about itself')

  t.same(await b.inbox.request({ type: 'join', room: 'lobby', id: 2 }), { type: 'ack', id: 2, data: { room: 'lobby', members: [alice, bob], total: 2 } }, 'joining again: the same ack, no new event')
  t.same(await b.inbox.request({ type: 'leave', room: 'lobby', id: 3 }), { type: 'ack', id: 3, data: { room: 'lobby' } })
  t.same(await a.inbox.type('presence'), { type: 'presence', room: 'lobby', data: { event: 'leave', member: bob } })
  await settle(a.inbox)
  await settle(b.inbox)
  t.equal(presence(a.inbox).length, 2, 'one join, one leave')
  t.same(presence(b.inbox), [], 'the leaver gets no event about itself')

  // a join without id: the event still goes out, no ack
  b.inbox.send({ type: 'join', room: 'lobby' })
  t.same(await a.inbox.type('presence'), { type: 'presence', room: 'lobby', data: { event: 'join', member: bob } })
  t.notOk(b.inbox.messages.some((m) => m.type === 'ack' && m.id === undefined))
  a.inbox.ws.terminate()
  b.inbox.ws.terminate()
})

t.test('presence: a closing or kicked connection is announced as leaving', async (t) => {
  const app = await setup(t, { routes, auth: { required: false } })
  const a = await client(app, '/p', 'alice')
  const b = await client(app, '/p', 'bob')
  const anon = await client(app, '/p')
  for (const x of [a, b, anon]) await x.inbox.request({ type: 'join', room: 'lobby', id: 1 })
  await a.inbox.request({ type: 'join', room: 'side', id: 2 })
  await b.inbox.request({ type: 'join', room: 'side', id: 2 })
  t.same((await anon.inbox.request({ type: 'join', room: 'side', id: 3 })).data.members.map((m: Member) => m.sub), ['alice', 'bob', null], 'anonymous members have sub null')

  let from = a.inbox.messages.length
  b.inbox.ws.terminate()
  const left = [
    await until(a.inbox, from, (m) => m.type === 'presence' && m.room === 'lobby'),
    await until(a.inbox, from, (m) => m.type === 'presence' && m.room === 'side')
  ]
  for (const event of left) t.same(event.data, { event: 'leave', member: { id: b.conn.id, sub: 'bob' } }, `leave from ${event.room as string}`)
  await gone(app, 2)

  from = a.inbox.messages.length
  anon.conn.close(4403, 'kicked')
  t.same(await until(a.inbox, from, (m) => m.type === 'presence'), { type: 'presence', room: 'lobby', data: { event: 'leave', member: { id: anon.conn.id, sub: null } } }, 'a kick is announced at once')
  t.same(await app.realtime.members('lobby'), [{ id: a.conn.id, sub: 'alice' }])
  a.inbox.ws.terminate()
  anon.inbox.ws.terminate()
})

t.test('presence: joins and leaves from server code are announced too', async (t) => {
  const app = await setup(t, { routes })
  const alice = await connect(app, '/p', { user: { sub: 'alice' } })
  const bob = await connect(app, '/p', { user: { sub: 'bob' } })
  t.after(() => Promise.all([alice.close(), bob.close()]))
  const b = app.realtime.connections().find((c) => c.sub === 'bob')!
  await alice.join('r')
  await b.join('r')
  t.same(await alice.next('presence'), { type: 'presence', room: 'r', data: { event: 'join', member: { id: b.id, sub: 'bob' } } })
  await b.leave('r')
  t.same(await alice.next('presence'), { type: 'presence', room: 'r', data: { event: 'leave', member: { id: b.id, sub: 'bob' } } })
  t.same(await bob.next('kicked'), { type: 'kicked', room: 'r', data: { code: 'LEFT' } }, 'bob is told he left')
  await t.rejects(bob.next('presence', { timeout: 50 }), { code: 'TIMEOUT' }, 'and gets no event about himself')
})

t.test('without presence: no events, no members in the ack', async (t) => {
  const app = await setup(t, { routes })
  const alice = await connect(app, '/n', { user: { sub: 'alice' } })
  const bob = await connect(app, '/n', { user: { sub: 'bob' } })
  t.after(() => alice.close())
  t.same(await alice.join('quiet'), { room: 'quiet' })
  t.same(await bob.join('quiet'), { room: 'quiet' })
  t.same(await bob.join('quiet'), { room: 'quiet' }, 'joining again acks again')
  await bob.leave('quiet')
  await bob.join('quiet')
  await bob.close()
  await gone(app, 1)
  t.same(alice.unread, [], 'nothing about joins, leaves or closes')
  t.same(await app.realtime.members('quiet'), [{ id: app.realtime.connections()[0].id, sub: 'alice' }], 'members() works without presence')
})

t.test('presence over a real port', async (t) => {
  const app = await setup(t, { routes })
  const url = await listen(app)
  const a = await connectPort(url + '/p', bearer(sign(app, 'alice')))
  const b = await connectPort(url + '/p', bearer(sign(app, 'bob')))
  await a.request({ type: 'join', room: 'lobby', id: 1 })
  const ack = await b.request({ type: 'join', room: 'lobby', id: 1 })
  t.same(ack.data.members.map((m: Member) => m.sub), ['alice', 'bob'])
  t.match(await a.type('presence'), { data: { event: 'join', member: { sub: 'bob' } } })
  b.ws.close(1000)
  t.match(await a.type('presence'), { data: { event: 'leave', member: { sub: 'bob' } } })
  a.ws.close()
})

/** The in-memory adapter, but its members() fails: the join ack falls back to local members. */
class NoMembersAdapter extends MemoryAdapter {
  override async members (): Promise<Member[]> {
    throw new Error('members unavailable')
  }
}

t.test('presence: when members() fails, the join ack lists local members and the failure is logged', async (t) => {
  const logs = logCapture()
  const app = await setup(t, { routes, adapter: new NoMembersAdapter() }, { logger: { level: 'warn', stream: logs.stream } })
  const a = await client(app, '/p', 'alice')
  t.same(await a.inbox.request({ type: 'join', room: 'r', id: 1 }), { type: 'ack', id: 1, data: { room: 'r', members: [{ id: a.conn.id, sub: 'alice' }], total: 1 } })
  t.match(logs.lines.find((l) => l.level === 40), { room: 'r', err: { message: 'members unavailable' } })
  await t.rejects(app.realtime.members('r'), { message: 'members unavailable' }, 'app.realtime.members passes the failure on')
  a.inbox.ws.terminate()
})
