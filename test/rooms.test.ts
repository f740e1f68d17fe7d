import t from 'tap'
import { once } from 'node:events'
import { RoomRegistry, type RoomMember } from '../lib/rooms.js'
import { kRooms } from '../lib/symbols.js'
import { connect } from '../lib/testing/index.js'
import { bearer, connect as connectPort, listen, sign, sleep, hub } from './helpers.js'
import { setup } from './protocol-helpers.js'

interface Member extends RoomMember { name: string }
function member (name: string): Member {
  return { name, [kRooms]: undefined }
}

t.test('RoomRegistry keeps room -> members and each member\'s rooms in step', async (t) => {
  const reg = new RoomRegistry<Member>()
  const m1 = member('m1')
  const m2 = member('m2')
  const m3 = member('m3')
  t.equal(reg.size, 0)
  t.same(reg.roomNames(), [])
  t.equal(reg.membersOf('a'), undefined)
  t.same([...reg.roomsOf(m1)], [])

  t.equal(reg.add('a', m1), true, 'first member of a room')
  t.equal(reg.add('a', m2), false, 'second member')
  t.equal(reg.add('a', m2), false, 'adding twice is a no-op')
  t.equal(reg.add('b', m1), true)
  t.equal(reg.size, 2)
  t.same([...reg.membersOf('a')!].map((m) => m.name), ['m1', 'm2'])
  t.same([...reg.roomsOf(m1)], ['a', 'b'])
  t.ok(m1[kRooms] instanceof Set, 'two rooms: a Set')
  t.equal(m2[kRooms], 'a', 'one room: just its name')
  const snapshot = reg.roomsOf(m1)
  reg.add('x', m1)
  t.equal(snapshot.size, 2, 'roomsOf is a snapshot')
  reg.remove('x', m1)
  t.same([...reg.roomsOf(m2)], ['a'])
  t.ok(reg.has('a', m1))
  t.notOk(reg.has('b', m2))
  t.notOk(reg.has('zzz', m1))
  t.same(reg.roomNames(), ['a', 'b'])

  t.equal(reg.remove('a', m3), false, 'removing a non-member')
  t.equal(reg.remove('nope', m1), false, 'removing from a room that does not exist')
  t.equal(reg.remove('a', m1), false, 'the room still has m2')
  t.same([...reg.roomsOf(m1)], ['b'])
  t.equal(m1[kRooms], 'b', 'back to one room: the name, no Set')
  t.equal(reg.remove('a', m2), true, 'the last member leaves: the room is gone')
  t.equal(reg.membersOf('a'), undefined, 'deleted at once')
  t.same(reg.roomNames(), ['b'])
  t.same([...reg.roomsOf(m2)], [], 'a member in no room')
  t.equal(m2[kRooms], undefined, 'keeps nothing')
  t.equal(reg.remove('a', m2), false, 'removing again')

  reg.add('c', m1)
  reg.add('c', m2)
  t.same(reg.removeAll(m1).sort(), ['b', 'c'])
  t.same(reg.removeAll(m1), [], 'removeAll of a member in no room')
  t.same(reg.roomNames(), ['c'], 'b emptied and went; c keeps m2')
  t.same([...reg.membersOf('c')!].map((m) => m.name), ['m2'])
  t.same(reg.removeAll(m2), ['c'])
  t.equal(reg.size, 0)
  t.same(reg.roomNames(), [])
})

t.test('RoomRegistry handles many members and rooms without leftovers', async (t) => {
  const reg = new RoomRegistry<Member>()
  const members = Array.from({ length: 50 }, (_, i) => member(`m${i}`))
  for (let r = 0; r < 20; r++) {
    for (const m of members) reg.add(`room-${r}`, m)
  }
  t.equal(reg.size, 20)
  t.equal(reg.membersOf('room-3')!.size, 50)
  for (const [i, m] of members.entries()) {
    if (i % 2 === 0) reg.removeAll(m)
    else for (let r = 0; r < 20; r++) reg.remove(`room-${r}`, m)
  }
  t.equal(reg.size, 0, 'every room emptied and deleted')
  for (const m of members) t.equal(reg.roomsOf(m).size, 0)
})

t.test('rooms exist while they have a member: app.realtime.rooms()', async (t) => {
  const app = await setup(t, { routes: [{ path: '/r', messages: {} }] })
  const a = await connect(app, '/r', { user: { sub: 'alice' } })
  const b = await connect(app, '/r', { user: { sub: 'bob' } })
  t.after(() => Promise.all([a.close(), b.close()]))
  t.same(app.realtime.rooms(), [])
  await a.join('lobby')
  await b.join('lobby')
  await b.join('side')
  t.same(app.realtime.rooms().sort(), ['lobby', 'side'])
  t.equal(app.realtime.stats().rooms, 2)
  await b.leave('side')
  t.same(app.realtime.rooms(), ['lobby'], 'the empty room is removed at once')
  await a.leave('lobby')
  t.same(app.realtime.rooms(), ['lobby'], 'b is still in lobby')
  await b.leave('lobby')
  t.same(app.realtime.rooms(), [])
  t.equal(app.realtime.stats().rooms, 0)
})

t.test('a closing connection leaves all its rooms (injected, terminated)', async (t) => {
  const app = await setup(t, { routes: [{ path: '/r', messages: {} }] })
  const a = await connect(app, '/r', { user: { sub: 'alice' } })
  const b = await connect(app, '/r', { user: { sub: 'bob' } })
  t.after(() => b.close())
  for (const room of ['x', 'y', 'z']) await a.join(room)
  await b.join('y')
  const aId = hub(app).connections().find((c) => c.sub === 'alice')!.id
  a.ws.terminate()
  for (let i = 0; i < 50 && hub(app).connections().length > 1; i++) await sleep(5)
  t.same(app.realtime.rooms(), ['y'], 'x and z had only alice and are gone')
  t.same(await app.realtime.members('y'), [{ id: hub(app).connections()[0].id, sub: 'bob' }])
  t.notOk((await app.realtime.members('y')).some((m) => m.id === aId))
})

t.test('a server-side close removes the connection from its rooms at once', async (t) => {
  const app = await setup(t, { routes: [{ path: '/r', messages: {} }] })
  const a = await connect(app, '/r', { user: { sub: 'alice' } })
  await a.join('x')
  const conn = hub(app).connections()[0]
  conn.close(4403, 'kicked')
  t.same(app.realtime.rooms(), [], 'no waiting for the closing handshake')
  t.same([...conn.rooms], [])
  t.same(await a.closed, { code: 4403, reason: 'kicked' })
})

t.test('over a real port: a client that closes leaves its rooms; the others keep receiving', async (t) => {
  const app = await setup(t, { routes: [{ path: '/r', messages: {} }] })
  const url = await listen(app)
  const a = await connectPort(url + '/r', bearer(sign(app, 'alice')))
  const b = await connectPort(url + '/r', bearer(sign(app, 'bob')))
  await a.request({ type: 'join', room: 'x', id: 1 })
  await a.request({ type: 'join', room: 'solo', id: 2 })
  await b.request({ type: 'join', room: 'x', id: 1 })
  t.same(app.realtime.rooms().sort(), ['solo', 'x'])
  const serverSide = hub(app).connections().find((c) => c.sub === 'alice')!
  const serverClosed = once(serverSide.ws, 'close')
  a.ws.close(1000, 'bye')
  await serverClosed
  t.same(app.realtime.rooms(), ['x'])
  t.same((await app.realtime.members('x')).map((m) => m.sub), ['bob'])
  app.realtime.broadcast('x', 'news', { n: 1 })
  t.same(await b.type('news'), { type: 'news', room: 'x', data: { n: 1 } })
  t.equal(hub(app).connections().length, 1)
  b.ws.close()
  await once(b.ws, 'close')
})
