// fastify-realtime/testing (lib/testing/): connect through injectWS, sign the
// user with app.jwt, buffered next(type), acks and errors, pings, close.
import t from 'tap'
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { defineRoute } from '../lib/index.js'
import { connect, TestConnectionError } from '../lib/testing/index.js'
import { setup } from './protocol-helpers.js'
import { sleep } from './helpers.js'

const chat = defineRoute({
  path: '/chat',
  presence: true,
  emits: {
    'chat.message': Type.Object({ from: Type.String(), text: Type.String() }),
    welcome: Type.Object({ motd: Type.String() })
  },
  canJoin: (_conn, room) => room !== 'private',
  messages: {
    'chat.send': {
      schema: Type.Object({ text: Type.String({ minLength: 1 }) }),
      ack: Type.Object({ ok: Type.Boolean() }),
      handler (conn, data, msg) {
        conn.broadcast(msg.room ?? 'lobby', 'chat.message', { from: conn.sub ?? 'anonymous', text: data.text })
        return { ok: true }
      }
    },
    slow: {
      schema: Type.Number(),
      async handler (_conn, ms) {
        await sleep(ms)
        return ms
      }
    }
  },
  onConnect (conn) {
    conn.send('welcome', { motd: `hi ${conn.sub ?? 'there'}` })
  }
})

t.test('connect signs the user with app.jwt; messages from onConnect are kept', async (t) => {
  const app = await setup(t, { routes: [chat] })
  const alice = await connect<typeof chat>(app, '/chat', { user: { sub: 'alice' } })
  t.after(() => alice.close())
  const welcome = await alice.next('welcome')
  t.same(welcome, { type: 'welcome', data: { motd: 'hi alice' } })
  t.equal(app.realtime.connections()[0].sub, 'alice')
})

t.test('join resolves with the ack data; request with the ack; next(type) leaves other types unread', async (t) => {
  const app = await setup(t, { routes: [chat] })
  const alice = await connect<typeof chat>(app, '/chat', { user: { sub: 'alice' } })
  const bob = await connect<typeof chat>(app, '/chat', { token: (app as any).jwt.sign({ sub: 'bob' }) })
  t.after(() => Promise.all([alice.close(), bob.close()]))

  const joined = await alice.join('lobby')
  t.same(joined.members?.map((m) => m.sub), ['alice'])
  t.equal(joined.total, 1)
  t.same((await bob.join('lobby')).members?.map((m) => m.sub).sort(), ['alice', 'bob'])

  const ack = await bob.request('chat.send', { text: 'hello' }, { room: 'lobby' })
  t.same(ack, { ok: true })
  // alice got: welcome, presence (bob joined), chat.message; reading chat.message first leaves the rest
  const message = await alice.next('chat.message')
  t.same(message, { type: 'chat.message', room: 'lobby', data: { from: 'bob', text: 'hello' } })
  t.equal(message.data?.text, 'hello')
  t.same((await alice.next('presence')).data, { event: 'join', member: { id: app.realtime.connections()[1].id, sub: 'bob' } })
  t.same((await alice.next()).type, 'welcome', 'next() without a type: the oldest unread')
  t.same(alice.unread, [])
  await alice.leave('lobby')
  t.same(await app.realtime.members('lobby').then((m) => m.map((x) => x.sub)), ['bob'])
})

t.test('rejections carry the server code, TIMEOUT or CLOSED', async (t) => {
  const app = await setup(t, { routes: [chat] })
  const alice = await connect<typeof chat>(app, '/chat', { user: { sub: 'alice' }, timeout: 300 })
  t.after(() => alice.close())
  await t.rejects(alice.join('private'), { code: 'FORBIDDEN', name: 'TestConnectionError' })
  await t.rejects(alice.leave('nowhere'), { code: 'NOT_IN_ROOM' })
  const invalid = await alice.request('chat.send', { text: '' }).catch((err: TestConnectionError) => err)
  t.ok(invalid instanceof TestConnectionError)
  t.equal((invalid as TestConnectionError).code, 'INVALID_MESSAGE')
  t.match((invalid as TestConnectionError).details, [{ path: '/text' }])
  await t.rejects(alice.request('chat.send', { text: 'x' }, { room: 'lobby' }), { code: 'NOT_IN_ROOM' })
  await t.rejects(alice.request('slow', 100, { timeout: 30 }), { code: 'TIMEOUT', message: /30 ms/ })
  await t.rejects(alice.next('never', { timeout: 20 }), { code: 'TIMEOUT' })
  // an error that answers no request of the kit is an ordinary message (after the slow handler: one message at a time)
  alice.ws.send('not json')
  t.match(await alice.next('error'), { code: 'BAD_JSON' })
})

t.test('a refused upgrade rejects; anonymous connections; user without @fastify/jwt', async (t) => {
  const app = await setup(t, { routes: [chat] })
  await t.rejects(connect(app, '/chat'), /401/)
  await t.rejects(connect(app, '/chat', { token: 'nope' }), /401/)

  const open = await setup(t, { routes: [chat], auth: { required: false } })
  const anon = await connect(open, '/chat')
  t.same((await anon.next('welcome')).data, { motd: 'hi there' })
  await anon.close()

  const noJwt = Fastify()
  t.after(() => noJwt.close())
  await t.rejects(connect(noJwt, '/chat', { user: { sub: 'a' } }), { name: 'TypeError', message: /app\.jwt/ })
})

t.test('answers ping frames: a heartbeat does not drop it', async (t) => {
  const app = await setup(t, { routes: [chat], heartbeat: { interval: 30 } })
  const alice = await connect(app, '/chat', { user: { sub: 'alice' } })
  t.after(() => alice.close())
  await sleep(200)
  t.equal(app.realtime.connections().length, 1, 'still connected after several sweeps')
  t.same(await alice.request('slow', 0), 0)
})

t.test('close() waits for the close; the server side is gone; later calls fail with CLOSED', async (t) => {
  const app = await setup(t, { routes: [chat] })
  const alice = await connect(app, '/chat', { user: { sub: 'alice' } })
  await alice.join('lobby')
  const waiting = alice.next('never', { timeout: 5000 })
  const { code } = await alice.close(4000, 'bye')
  t.equal(code, 4000)
  await t.rejects(waiting, { code: 'CLOSED' }, 'a waiting next() fails at once')
  for (let i = 0; i < 50 && app.realtime.connections().length > 0; i++) await sleep(5)
  t.equal(app.realtime.connections().length, 0)
  t.same(app.realtime.rooms(), [])
  t.throws(() => alice.send('x', 1), { code: 'CLOSED' })
  await t.rejects(alice.next('x'), { code: 'CLOSED' })
  t.same(await alice.close(), { code: 4000, reason: 'bye' }, 'closing twice answers the same')

  // the server closes: `closed` tells how
  const bob = await connect(app, '/chat', { user: { sub: 'bob' } })
  app.realtime.connections()[0].close(4403, 'kicked')
  t.same(await bob.closed, { code: 4403, reason: 'kicked' })
})
