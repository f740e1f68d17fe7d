import t from 'tap'
import { once } from 'node:events'
import type { FastifyInstance } from 'fastify'
import type WebSocket from 'ws'
import type { RealtimeOptions } from '../lib/index.js'
import type { RealtimeConnection as Connection } from '../lib/connection.js'
import { textFrame } from '../lib/ws/writer.js'
import { build, closed, connect, listen, sign, type Inbox, hub } from './helpers.js'
import { until } from './helpers/wait.js'

t.setTimeout(60_000)

interface Setup {
  app: FastifyInstance
  closes: Array<{ sub: string | null, code: number, reason: string }>
  join: (sub: string, room: string, options?: WebSocket.ClientOptions) => Promise<Inbox>
  conn: (sub: string) => Connection
}

/** An app on a real port with a route `/rt`; `join` opens a client for `sub` and joins `room`. */
async function setup (t: Parameters<typeof build>[0], opts: RealtimeOptions = {}): Promise<Setup> {
  const closes: Setup['closes'] = []
  const app = await build(t, {
    heartbeat: false,
    rateLimit: { max: 100_000 },
    ...opts,
    routes: [{ path: '/rt', onClose: (conn, code, reason) => { closes.push({ sub: conn.sub, code, reason }) } }]
  })
  const url = await listen(app)
  return {
    app,
    closes,
    async join (sub, room, options = {}) {
      const inbox = await connect(`${url}/rt`, { ...options, headers: { authorization: `Bearer ${sign(app, sub)}` } })
      await inbox.request({ type: 'join', room, id: 'join' })
      return inbox
    },
    conn (sub) {
      const found = hub(app).connections().find((c) => c.sub === sub)
      if (found === undefined) throw new Error(`no connection for ${sub}`)
      return found
    }
  }
}

const turn = async (): Promise<void> => await new Promise((resolve) => setImmediate(resolve))

/** Record every chunk each connection's socket hands to the kernel. */
function spyWrites (conn: Connection): { calls: Buffer[][] } {
  const socket = (conn.ws as any)._socket
  const calls: Buffer[][] = []
  const writev = socket._writev.bind(socket)
  const write = socket._write.bind(socket)
  socket._writev = (chunks: Array<{ chunk: Buffer }>, cb: () => void) => { calls.push(chunks.map((c) => c.chunk)); writev(chunks, cb) }
  socket._write = (chunk: Buffer, enc: string, cb: () => void) => { calls.push([chunk]); write(chunk, enc, cb) }
  return { calls }
}

t.test('a broadcast is framed once and each socket gets one write per turn', async (t) => {
  const s = await setup(t)
  const members = await Promise.all(['a', 'b', 'c'].map((sub) => s.join(sub, 'room')))
  const spies = ['a', 'b', 'c'].map((sub) => spyWrites(s.conn(sub)))
  for (let i = 0; i < 5; i++) s.app.realtime.broadcast('room', 'tick', { i })
  const frameBytes = Buffer.byteLength('{"type":"tick","room":"room","data":{"i":0}}') + 2
  for (const sub of ['a', 'b', 'c']) {
    t.equal(s.conn(sub).ws.bufferedAmount, 5 * frameBytes, `${sub}: ws.bufferedAmount counts the fast path's bytes`)
  }
  for (const m of members) await until(() => m.messages.length === 6)
  const joined = Buffer.concat([0, 1, 2, 3, 4].map((i) => textFrame(`{"type":"tick","room":"room","data":{"i":${i}}}`)))
  for (const [i, spy] of spies.entries()) {
    t.equal(spy.calls.length, 1, `member ${i}: one write for the whole turn`)
    t.same(Buffer.concat(spy.calls[0]), joined, `member ${i}: the five frames, joined in order`)
  }
  for (const m of members) {
    t.same(m.messages.slice(1).map((x) => x.data.i), [0, 1, 2, 3, 4], 'in order')
  }
  for (const sub of ['a', 'b', 'c']) t.equal(s.conn(sub).ws.bufferedAmount, 0, 'all sent')

  t.ok(spies.every((spy) => spy.calls[0][0] === spies[0].calls[0][0]), 'joined once: the same Buffer object for every member')

  // one broadcast in a turn: every member is written the very same buffer, framed once
  s.app.realtime.broadcast('room', 'tick', { i: 5 })
  for (const m of members) await until(() => m.messages.length === 7)
  t.same(spies.map((spy) => spy.calls.length), [2, 2, 2])
  const [first] = spies[0].calls[1]
  t.same(first, textFrame('{"type":"tick","room":"room","data":{"i":5}}'))
  t.ok(spies.every((spy) => spy.calls[1].length === 1 && spy.calls[1][0] === first), 'the same Buffer object for every member')

  // members holding different frames get their own joins, even as many of them
  s.app.realtime.broadcast('room', 'tick', { i: 6 })
  s.app.realtime.broadcast('room', 'tick', { i: 7 }, { except: s.conn('a').id })
  s.app.realtime.broadcast('room', 'tick', { i: 8 }, { except: s.conn('b').id })
  s.app.realtime.broadcast('room', 'tick', { i: 9 })
  await until(() => members.map((m) => m.messages.length).join() === '10,10,11')
  t.same(members.map((m) => m.messages.slice(7).map((x) => x.data.i)), [[6, 8, 9], [6, 7, 9], [6, 7, 8, 9]], 'each without the broadcast it was excepted from')
  const joins = spies.map((spy) => spy.calls[2][0])
  t.equal(new Set(joins).size, 3, 'three different sequences: three joins')
})

t.test('broadcasts and direct sends keep their order', async (t) => {
  const s = await setup(t)
  const a = await s.join('a', 'room')
  const b = await s.join('b', 'room')
  const rt = s.app.realtime
  const ca = s.conn('a')
  let n = 0
  rt.broadcast('room', 'seq', n++)
  rt.send(ca.id, 'seq', n++)
  ca.send('seq', n++)
  rt.sendToUser('a', 'seq', n++)
  rt.broadcast('room', 'seq', n++, { except: s.conn('b').id })
  ca.broadcast('room', 'seq', n++)
  await turn()
  rt.send(ca.id, 'seq', n++)
  rt.broadcast('room', 'seq', n++)
  await until(() => a.messages.length === 1 + n)
  t.same(a.messages.slice(1).map((m) => m.data), [0, 1, 2, 3, 4, 5, 6, 7], 'a got every message in the order sent')
  await until(() => b.messages.length === 4)
  t.same(b.messages.slice(1).map((m) => m.data), [0, 5, 7], 'b only the broadcasts not excepting it')
})

t.test('with perMessageDeflate, broadcasts go through ws.send and still arrive in order', async (t) => {
  const s = await setup(t, { perMessageDeflate: true })
  const zipped = await s.join('zipped', 'room', { perMessageDeflate: true })
  const plain = await s.join('plain', 'room', { perMessageDeflate: false })
  t.match(zipped.ws.extensions, /permessage-deflate/)
  t.equal(plain.ws.extensions, '', 'a client may decline compression')
  const zspy = spyWrites(s.conn('zipped'))
  const rt = s.app.realtime
  const big = 'w'.repeat(2000)
  for (let i = 0; i < 10; i++) {
    rt.broadcast('room', 'm', { i, big })
    rt.send(s.conn('zipped').id, 'direct', { i })
    rt.send(s.conn('plain').id, 'direct', { i })
  }
  await until(() => zipped.messages.length === 21 && plain.messages.length === 21)
  for (const inbox of [zipped, plain]) {
    t.same(inbox.messages.slice(1).map((m) => `${m.type}${m.data.i}`), Array.from({ length: 10 }, (_, i) => [`m${i}`, `direct${i}`]).flat())
  }
  t.ok(zipped.messages.slice(1).every((m) => m.type !== 'm' || m.data.big === big), 'payloads intact')
  const sent = zspy.calls.flat().reduce((sum, b) => sum + b.length, 0)
  t.ok(sent < 10 * big.length, `compressed on the wire (${sent} bytes)`)
})

t.test('a burst bigger than maxBufferedBytes in one turn does not close a reader', async (t) => {
  const s = await setup(t, { maxBufferedBytes: 64 * 1024 })
  const a = await s.join('a', 'room')
  const payload = 'p'.repeat(4096)
  for (let i = 0; i < 256; i++) s.app.realtime.broadcast('room', 'burst', { i, payload }) // 1 MiB, one turn
  await until(() => a.messages.length === 257)
  t.same(a.messages.slice(1).map((m) => m.data.i), Array.from({ length: 256 }, (_, i) => i))
  t.ok(s.conn('a').open, 'still open')
  t.same(s.closes, [])
})

/** Broadcast numbered messages, one per turn, until `done()` or a cap. */
async function flood (app: FastifyInstance, room: string, done: () => boolean, size = 32 * 1024, cap = 4000): Promise<number> {
  const payload = 'f'.repeat(size)
  let seq = 0
  while (!done() && seq < cap) {
    app.realtime.broadcast(room, 'flood', { seq: seq++, payload })
    await turn()
  }
  return seq
}

function pause (inbox: Inbox): void {
  (inbox.ws as any)._socket.pause()
}

t.test('1013: a client that stops reading is closed; the other member gets every message in order', async (t) => {
  const s = await setup(t, { maxBufferedBytes: 256 * 1024, closeGracePeriod: 10_000 })
  const fast = await s.join('fast', 'room')
  const slow = await s.join('slow', 'room')
  const slowConn = s.conn('slow')
  pause(slow)
  const sent = await flood(s.app, 'room', () => !slowConn.open)
  t.ok(sent < 4000, `the slow consumer was caught after ${sent} messages`)
  t.equal(slowConn.open, false)
  t.same(await s.app.realtime.members('room'), [{ id: s.conn('fast').id, sub: 'fast' }], 'it left the room at once')
  t.ok(slowConn.ws.bufferedAmount > 256 * 1024, 'its backlog was past the limit')
  t.ok(s.conn('fast').open, 'the reader was not slowed down or closed')

  // more traffic after the close reaches the reader only
  s.app.realtime.broadcast('room', 'after', {})
  await until(() => fast.messages.length === sent + 2)
  const seqs = fast.messages.slice(1, -1).map((m) => m.data.seq)
  t.same(seqs, Array.from({ length: sent }, (_, i) => i), 'the reader got every message, in order')
  t.equal(fast.messages.at(-1).type, 'after')

  // the slow client reads again: what was sent before the close, in order, then 1013
  const slowClosed = closed(slow.ws)
  ;(slow.ws as any)._socket.resume()
  t.same(await slowClosed, { code: 1013, reason: 'slow consumer' })
  const got = slow.messages.slice(1).map((m) => m.data.seq)
  t.same(got, Array.from({ length: got.length }, (_, i) => i), 'a prefix, in order, no gaps')
  t.notOk(slow.messages.some((m) => m.type === 'after'), 'nothing after the close')
  await until(() => s.closes.length === 1)
  t.same(s.closes, [{ sub: 'slow', code: 1013, reason: 'slow consumer' }], 'server side: onClose with 1013')
})

t.test('a slow consumer that never reads again is dropped after closeGracePeriod', async (t) => {
  const s = await setup(t, { maxBufferedBytes: 64 * 1024, closeGracePeriod: 150 })
  await s.join('fast', 'room')
  const slow = await s.join('slow', 'room')
  const slowConn = s.conn('slow')
  pause(slow)
  await flood(s.app, 'room', () => !slowConn.open)
  const caught = Date.now()
  t.equal(s.app.realtime.stats().connections, 2, 'waiting for its close frame')
  await until(() => s.closes.length === 1, 3000)
  const waited = Date.now() - caught
  t.ok(waited >= 100, `dropped after the grace period (${waited} ms)`)
  t.equal(s.closes[0].sub, 'slow')
  t.equal(s.closes[0].code, 1006, 'no closing handshake: dropped')
  t.equal(s.app.realtime.stats().connections, 1, 'its slot is free')
  ;(slow.ws as any)._socket.resume()
  await once(slow.ws, 'close')
})
