// Room history on the client side (offsets, epochs, resync) and kicks from a
// room: against a fake server that speaks that part of the protocol, and the
// kick against the real one.
import { test } from 'tap'
import { sign } from './helpers.js'
import { ack, chatServer, fakeServer, nextEvent, opened, record, until, type FakeLink } from './client-helpers.js'
import { createClient, type JoinAck } from '../lib/client/index.js'

function news (link: FakeLink, room: string, offset: number | undefined): void {
  link.send(offset === undefined ? { type: 'news', room, data: { n: 'live' } } : { type: 'news', room, data: { offset }, offset })
}

test('offsets: duplicates dropped, re-join asks since the last one, recovered: true carries on', async (t) => {
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: false, reconnect: { base: 1, cap: 5 } })
  t.after(() => client.close())
  const got = record(client, ['news', 'resync'])

  const joined = client.join('r')
  const first = await server.link(0)
  const join = await first.received.type('join', 'r')
  t.equal(join.data, undefined, 'a first join asks for nothing')
  ack(first, join, { room: 'r', offset: 2, epoch: 'e1' })
  t.same(await joined, { room: 'r', offset: 2, epoch: 'e1' }, 'join resolves with the ack data')
  for (const offset of [3, 4, 4, 3, 5]) news(first, 'r', offset)
  await until(() => got.length === 3, 2000, 'three messages')
  first.socket.terminate()

  const second = await server.link(1)
  const rejoin = await second.received.type('join', 'r')
  t.same(rejoin.data, { since: { offset: 5, epoch: 'e1' } }, 'the re-join asks for what came after 5')
  for (const offset of [5, 6]) news(second, 'r', offset) // the replay, with one it already had
  ack(second, rejoin, { room: 'r', offset: 6, epoch: 'e1', recovered: true })
  news(second, 'r', 7)
  await until(() => got.length === 5, 2000, 'five messages')
  t.same(got.map(([type, data]) => type === 'news' ? data.offset : type), [3, 4, 5, 6, 7], 'each once, in order; no resync')
})

test('resync: from the server (new epoch adopted) and from a re-join answered recovered: false', async (t) => {
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: false, reconnect: { base: 1, cap: 5 }, rooms: ['r', 'plain'] })
  t.after(() => client.close())
  const got = record(client, ['news', 'resync'])
  const first = await server.link(0)
  ack(first, await first.received.type('join', 'r'), { room: 'r', offset: 7, epoch: 'e1' })
  ack(first, await first.received.type('join', 'plain'), { room: 'plain' })
  news(first, 'r', 8)
  const resync = nextEvent(client, 'resync')
  first.send({ type: 'resync', room: 'r', data: { epoch: 'e2', offset: 0 } })
  t.same(await resync, { room: 'r' })
  news(first, 'r', 1) // the new epoch starts again: 1 is new, not a duplicate of the old 1
  news(first, 'plain', undefined)
  await until(() => got.length === 4, 2000, 'the messages')
  first.socket.terminate()

  const second = await server.link(1)
  const rejoin = await second.received.type('join', 'r')
  t.same(rejoin.data, { since: { offset: 1, epoch: 'e2' } }, 'asks within the adopted epoch')
  const plain = await second.received.type('join', 'plain')
  t.equal(plain.data, undefined, 'a room without history is re-joined plainly')
  ack(second, plain, { room: 'plain' })
  const lost = nextEvent(client, 'resync')
  ack(second, rejoin, { room: 'r', offset: 10, epoch: 'e3', recovered: false })
  t.same(await lost, { room: 'r' }, 'history lost: resync')
  for (const offset of [10, 11]) news(second, 'r', offset)
  await until(() => got.length === 6, 2000, 'the next message')
  t.same(got.map(([type, data]) => type === 'news' ? data.offset ?? data.n : `resync ${data.room}`), [8, 'resync r', 1, 'live', 'resync r', 11], 'offset 10 was already covered by the ack')
})

test('join(room, { history }) asks for the last N; the replay goes through even when already seen', async (t) => {
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: false, reconnect: false })
  t.after(() => client.close())
  const got = record(client, ['news'])
  await opened(client)
  const link = await server.link(0)

  const plain = client.join('h')
  ack(link, await link.received.type('join', 'h'), { room: 'h', offset: 3, epoch: 'e' })
  await plain
  const again = client.join('h', { history: 2 })
  const ask = await link.received.type('join', 'h')
  t.same(ask.data, { history: 2 })
  for (const offset of [2, 3]) news(link, 'h', offset)
  ack(link, ask, { room: 'h', offset: 3, epoch: 'e' })
  const ackData: JoinAck = await again
  t.same(ackData, { room: 'h', offset: 3, epoch: 'e' })
  t.same(got.map(([, data]) => data.offset), [2, 3], 'the asked history is delivered')
  await t.rejects(client.join('h', { history: 0 }), TypeError)
  await t.rejects(client.join('h', { history: 1.5 }), TypeError)
})

test('history asked while offline goes with the first join', async (t) => {
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: false, reconnect: false })
  t.after(() => client.close())
  const joined = client.join('h', { history: 50 })
  const link = await server.link(0)
  const ask = await link.received.type('join', 'h')
  t.same(ask.data, { history: 50 })
  ack(link, ask, { room: 'h', offset: 0, epoch: 'e' })
  t.same(await joined, { room: 'h', offset: 0, epoch: 'e' })
})

test('kicked: the room is dropped from the list, a kicked event, no re-join on reconnect', async (t) => {
  const server = await fakeServer(t, (link) => {
    link.socket.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      if (frame.type === 'join') ack(link, frame, { room: frame.room })
    })
  })
  const client = createClient(server.url, { heartbeat: false, reconnect: { base: 1, cap: 5 }, rooms: ['a', 'b'] })
  t.after(() => client.close())
  const first = await server.link(0)
  await first.received.type('join', 'b')
  const kicked = nextEvent(client, 'kicked')
  first.send({ type: 'kicked', room: 'a', data: { code: 'FORBIDDEN' } })
  const info = await kicked
  t.same(info, { room: 'a', code: 'FORBIDDEN' })
  t.same(client.rooms, ['b'])
  t.equal(client.state, 'open', 'the connection stays')
  first.socket.terminate()
  const second = await server.link(1)
  await second.received.type('join', 'b')
  await opened(client)
  await client.request('x', 1, { timeout: 100 }).catch(() => {}) // a round trip: any join for "a" would be in by now
  t.same(second.received.frames.filter((f) => f.type === 'join').map((f) => f.room), ['b'], 're-joined b only')
})

test('a join ack is applied as it is read: frames right behind it see its offset', async (t) => {
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: false, reconnect: false, rooms: ['r'] })
  t.after(() => client.close())
  const got = record(client, ['news'])
  const link = await server.link(0)
  const join = await link.received.type('join', 'r')
  // written in one turn: they usually arrive in one read, before any promise callback could run
  ack(link, join, { room: 'r', offset: 7, epoch: 'e1' })
  for (const offset of [6, 7, 8]) news(link, 'r', offset)
  await until(() => got.length >= 1, 2000, 'a message')
  await client.request('x', 1, { timeout: 50 }).catch(() => {})
  t.same(got.map(([, data]) => data.offset), [8], 'only what came after the ack\'s offset')
})

test('kicked by the real server (conn.leave): the room is dropped and not re-joined', async (t) => {
  const { app, url } = await chatServer(t)
  const client = createClient(url, { token: sign(app, 'alice'), heartbeat: false, reconnect: { base: 1, cap: 5 }, rooms: ['a', 'b'] })
  t.after(() => client.close())
  const joinedBoth = (): boolean => app.realtime.connections()[0]?.rooms.size === 2
  await until(joinedBoth, 2000, 'both rooms joined')
  const kicked = nextEvent(client, 'kicked')
  await app.realtime.connections()[0].leave('a')
  t.same(await kicked, { room: 'a', code: 'LEFT' })
  t.same(client.rooms, ['b'])
  app.realtime.connections()[0].terminate()
  await nextEvent(client, 'close')
  await opened(client)
  await until(() => app.realtime.connections()[0]?.rooms.size === 1, 2000, 'the re-join')
  t.same([...app.realtime.connections()[0].rooms], ['b'], 're-joined b only')
})
