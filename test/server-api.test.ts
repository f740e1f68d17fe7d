import t from 'tap'
import { once } from 'node:events'
import { Type } from '@sinclair/typebox'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import realtime, { Connection, MemoryAdapter } from '../lib/index.js'
import type { Adapter, AdapterHub, Member, RealtimeOptions, RouteDefinition } from '../lib/index.js'
import { SECRET, bearer, build, closed, connect, inject, listen, sign, sleep } from './helpers.js'
import { logCapture, settle, setup, until } from './protocol-helpers.js'

const say = Type.Object({ text: Type.String() })
const chatRoute: RouteDefinition<any> = {
  path: '/s',
  messages: {
    say: {
      schema: say,
      handler (conn: Connection, data: { text: string }, msg: { room?: string }) {
        conn.broadcast(msg.room!, 'said', { from: conn.sub, text: data.text })
        return 'ok'
      }
    },
    shout: {
      schema: say,
      handler (conn: Connection, data: { text: string }, msg: { room?: string }) {
        conn.broadcast(msg.room!, 'said', { from: conn.sub, text: data.text }, { except: conn.id })
      }
    }
  }
}

async function joined (app: Awaited<ReturnType<typeof setup>>, sub: string, ...rooms: string[]) {
  const inbox = await inject(app, '/s', sign(app, sub))
  for (const room of rooms) await inbox.request({ type: 'join', room, id: room })
  const conn = app.realtime.connections().find((c) => c.sub === sub && !seen.has(c))!
  seen.add(conn)
  return { inbox, conn }
}
const seen = new WeakSet<Connection>()

t.test('app.realtime is a RealtimeServer', async (t) => {
  const app = await setup(t, { routes: [chatRoute] })
  t.type(app.realtime.broadcast, 'function')
  t.ok(app.hasDecorator('realtime'))
})

t.test('broadcast reaches every member, the sender included, except the ids given', async (t) => {
  const app = await setup(t, { routes: [chatRoute] })
  const a = await joined(app, 'alice', 'r')
  const b = await joined(app, 'bob', 'r')
  const c = await joined(app, 'carol', 'r')
  const outsider = await joined(app, 'dave', 'other')

  t.same(await a.inbox.request({ type: 'say', room: 'r', id: 1, data: { text: 'hi' } }), { type: 'ack', id: 1, data: 'ok' })
  const expected = { type: 'said', room: 'r', data: { from: 'alice', text: 'hi' } }
  t.same(a.inbox.messages.find((m) => m.type === 'said'), expected, 'the sender gets its own broadcast by default, before its ack')
  t.same(await b.inbox.type('said'), expected)
  t.same(await c.inbox.type('said'), expected)

  await a.inbox.request({ type: 'shout', room: 'r', id: 2, data: { text: 'not me' } })
  t.same(await b.inbox.type('said'), { type: 'said', room: 'r', data: { from: 'alice', text: 'not me' } })
  t.same(await c.inbox.type('said'), { type: 'said', room: 'r', data: { from: 'alice', text: 'not me' } })

  app.realtime.broadcast('r', 'note', { n: 1 }, { except: [a.conn.id, c.conn.id] })
  app.realtime.broadcast('r', 'note', { n: 2 }, { except: b.conn.id })
  app.realtime.broadcast('r', 'note', { n: 3 }, { except: [] })
  app.realtime.broadcast('r', 'bare')
  app.realtime.broadcast('nobody-here', 'note', { n: 4 })
  for (const x of [a, b, c, outsider]) await settle(x.inbox)
  const notes = (x: typeof a) => x.inbox.messages.filter((m) => m.type === 'note').map((m) => m.data.n)
  t.same(notes(a), [2, 3])
  t.same(notes(b), [1, 3])
  t.same(notes(c), [2, 3])
  t.same(notes(outsider), [], 'non-members get nothing')
  t.same(a.inbox.messages.filter((m) => m.type === 'said').length, 1, 'shout excepted the sender')
  t.same(a.inbox.messages.find((m) => m.type === 'bare'), { type: 'bare', room: 'r' }, 'no data: no data key')
  for (const x of [a, b, c, outsider]) x.inbox.ws.terminate()
})

t.test('broadcast from an HTTP route', async (t) => {
  const app = await build(t, { heartbeat: false, closeGracePeriod: 0, routes: [chatRoute] })
  app.post('/announce', async (request) => {
    app.realtime.broadcast('news', 'news.item', request.body)
    return { ok: true }
  })
  await app.ready()
  const a = await joined(app, 'alice', 'news')
  const res = await app.inject({ method: 'POST', url: '/announce', payload: { title: 'hello' } })
  t.same(res.json(), { ok: true })
  t.same(await a.inbox.type('news.item'), { type: 'news.item', room: 'news', data: { title: 'hello' } })
  a.inbox.ws.terminate()
})

t.test('send(connId) reaches one connection; false when it is not here or not open', async (t) => {
  const app = await setup(t, { routes: [chatRoute] })
  const a = await joined(app, 'alice')
  const b = await joined(app, 'bob')
  t.equal(app.realtime.send(a.conn.id, 'notice', { text: 'hi' }), true)
  t.equal(app.realtime.send(a.conn.id, 'nodata'), true)
  t.same(await a.inbox.type('notice'), { type: 'notice', data: { text: 'hi' } }, 'no room key')
  t.same(await a.inbox.type('nodata'), { type: 'nodata' })
  t.equal(app.realtime.send('no-such-id', 'notice', {}), false)
  await settle(b.inbox)
  t.notOk(b.inbox.messages.some((m) => m.type === 'notice'), 'only the addressee')
  a.conn.close(4403, 'bye')
  t.equal(app.realtime.send(a.conn.id, 'notice', {}), false, 'a closing connection')
  t.equal(a.conn.send('notice', {}), false)
  t.equal(b.conn.send('direct', { x: 1 }, 'some-room'), true, 'conn.send with a room')
  t.same(await b.inbox.type('direct'), { type: 'direct', room: 'some-room', data: { x: 1 } })
  a.inbox.ws.terminate()
  b.inbox.ws.terminate()
})

t.test('sendToUser reaches every connection of that user', async (t) => {
  const app = await setup(t, { auth: { required: false }, routes: [chatRoute] })
  const a1 = await joined(app, 'alice')
  const a2 = await joined(app, 'alice')
  const a3 = await joined(app, 'alice')
  const b = await joined(app, 'bob')
  const anon = await inject(app, '/s')
  app.realtime.sendToUser('alice', 'notification', { unread: 3 })
  app.realtime.sendToUser('nobody', 'notification', { unread: 1 })
  for (const a of [a1, a2, a3]) t.same(await a.inbox.type('notification'), { type: 'notification', data: { unread: 3 } })
  await settle(b.inbox)
  await settle(anon)
  t.notOk(b.inbox.messages.some((m) => m.type === 'notification'))
  t.notOk(anon.messages.some((m) => m.type === 'notification'))

  // as alice's connections close one by one, the others still get them
  a1.inbox.ws.terminate()
  for (let i = 0; i < 50 && app.realtime.connections().length > 4; i++) await sleep(5)
  app.realtime.sendToUser('alice', 'again')
  t.same(await a2.inbox.type('again'), { type: 'again' })
  t.same(await a3.inbox.type('again'), { type: 'again' })
  a2.inbox.ws.terminate()
  for (let i = 0; i < 50 && app.realtime.connections().length > 3; i++) await sleep(5)
  app.realtime.sendToUser('alice', 'last one')
  t.same(await a3.inbox.type('last one'), { type: 'last one' }, 'the last connection of a user')
  a3.inbox.ws.terminate()
  for (let i = 0; i < 50 && app.realtime.connections().length > 2; i++) await sleep(5)
  app.realtime.sendToUser('alice', 'to nobody')
  t.equal(app.realtime.stats().drops, 0, 'a user with no connection left is no drop')
  b.inbox.ws.terminate()
  anon.ws.terminate()
})

t.test('members(room) is a promise of [{ id, sub }]', async (t) => {
  const app = await setup(t, { auth: { required: false }, routes: [chatRoute] })
  const a = await joined(app, 'alice', 'r')
  const anon = await inject(app, '/s')
  await anon.request({ type: 'join', room: 'r', id: 1 })
  const anonConn = app.realtime.connections().find((c) => c.sub === null)!
  const pending = app.realtime.members('r')
  t.ok(pending instanceof Promise)
  const members = await pending
  t.same(members.sort((x, y) => String(x.sub).localeCompare(String(y.sub))), [{ id: a.conn.id, sub: 'alice' }, { id: anonConn.id, sub: null }])
  t.same(await app.realtime.members('empty'), [])
  t.equal(anonConn.user, null, 'an anonymous connection has user null')
  a.inbox.ws.terminate()
  anon.ws.terminate()
})

t.test('connections() lists the open connections with id, user, request and rooms', async (t) => {
  const app = await setup(t, { routes: [chatRoute] })
  t.same(app.realtime.connections(), [])
  const a = await joined(app, 'alice', 'r1', 'r2')
  const b = await joined(app, 'bob')
  const list = app.realtime.connections()
  t.equal(list.length, 2)
  t.ok(list.every((c) => typeof c.send === 'function' && typeof c.close === 'function'))
  t.not(a.conn.id, b.conn.id, 'ids are unique')
  t.match(a.conn.id, /^[0-9a-f]{12}\.[0-9a-z]+$/, 'instance id and sequence')
  t.match(a.conn.user, { sub: 'alice' })
  t.equal(a.conn.request.url, '/s')
  t.same([...a.conn.rooms], ['r1', 'r2'])
  t.ok(a.conn.open)
  b.inbox.ws.terminate()
  for (let i = 0; i < 50 && app.realtime.connections().length > 1; i++) await sleep(5)
  t.same(app.realtime.connections().map((c) => c.id), [a.conn.id], 'gone once closed')
  a.inbox.ws.terminate()
})

t.test('stats() counters', async (t) => {
  const app = await setup(t, { rateLimit: { max: 3, windowMs: 60_000 }, routes: [chatRoute] })
  t.same(app.realtime.stats(), { connections: 0, rooms: 0, messagesIn: 0, messagesOut: 0, drops: 0, errors: 0, adapter: { connected: true } })
  const a = await joined(app, 'alice', 'r') // 1 in, 1 out
  const b = await joined(app, 'bob', 'r') // 1 in, 1 out
  t.match(app.realtime.stats(), { connections: 2, rooms: 1, messagesIn: 2, messagesOut: 2, drops: 0, errors: 0 })

  a.inbox.send('garbage') // in, out (error), error
  await a.inbox.type('error')
  t.match(app.realtime.stats(), { messagesIn: 3, messagesOut: 3, errors: 1 })

  app.realtime.broadcast('r', 'x', 1) // 2 out
  await a.inbox.type('x')
  await b.inbox.type('x')
  t.match(app.realtime.stats(), { messagesIn: 3, messagesOut: 5, errors: 1, drops: 0 })

  // alice's third message of the window: handled, broadcast to both (2 out) and acked (1 out)
  t.same(await a.inbox.request({ type: 'say', room: 'r', id: 8, data: { text: 'third' } }), { type: 'ack', id: 8, data: 'ok' })
  await b.inbox.type('said')
  t.match(app.realtime.stats(), { messagesIn: 4, messagesOut: 8, errors: 1, drops: 0 })
  // the fourth is RATE_LIMITED and dropped
  const from = a.inbox.messages.length
  a.inbox.send({ type: 'say', room: 'r', id: 9, data: { text: 'over' } })
  t.match(await until(a.inbox, from, (m) => m.type === 'error'), { code: 'RATE_LIMITED' })
  t.match(app.realtime.stats(), { messagesIn: 5, messagesOut: 9, errors: 2, drops: 1 })
  await settle(b.inbox)
  t.equal(b.inbox.messages.filter((m) => m.type === 'said').length, 1, 'the dropped message was not handled')

  a.inbox.ws.terminate()
  b.inbox.ws.terminate()
  for (let i = 0; i < 50 && app.realtime.stats().connections > 0; i++) await sleep(5)
  t.match(app.realtime.stats(), { connections: 0, rooms: 0 }, 'closed connections leave the counts')
})

t.test('stats() drops and rooms after a close', async (t) => {
  const app = await setup(t, { routes: [chatRoute] })
  const a = await joined(app, 'alice', 'r')
  const b = await joined(app, 'bob', 'r')
  const before = app.realtime.stats()
  b.conn.close(1000, 'done')
  app.realtime.broadcast('r', 'x', 1) // b already left: delivered to a only
  t.equal(b.conn.send('late'), false)
  t.equal(app.realtime.send(b.conn.id, 'late'), false)
  const after = app.realtime.stats()
  t.equal(after.messagesOut - before.messagesOut, 1, 'one delivery, to a')
  t.equal(after.drops - before.drops, 2, 'two sends to a closing connection dropped')
  t.equal(after.rooms, 1)
  await a.inbox.type('x')
  a.inbox.ws.terminate()
  b.inbox.ws.terminate()
})

t.test('conn.join, leave, broadcast and send from server code', async (t) => {
  const app = await build(t, {
    heartbeat: false,
    closeGracePeriod: 0,
    maxRoomsPerConnection: 1,
    routes: [{
      path: '/s',
      messages: {},
      canJoin: () => false,
      async onConnect (conn) {
        await conn.join(`user:${conn.sub}`)
        await conn.join('everyone') // no canJoin check, no room limit from server code
        conn.send('welcome', { rooms: [...conn.rooms] })
      }
    }]
  })
  await app.ready()
  const a = await inject(app, '/s', sign(app, 'alice'))
  t.same(await a.type('welcome'), { type: 'welcome', data: { rooms: ['user:alice', 'everyone'] } })
  const conn = app.realtime.connections()[0]
  app.realtime.broadcast('user:alice', 'private', { n: 1 })
  t.same(await a.type('private'), { type: 'private', room: 'user:alice', data: { n: 1 } })
  conn.broadcast('everyone', 'all', { n: 2 })
  t.same(await a.type('all'), { type: 'all', room: 'everyone', data: { n: 2 } }, 'conn.broadcast includes the connection itself')
  conn.broadcast('everyone', 'all', { n: 3 }, { except: conn.id })
  await conn.join('everyone')
  t.same([...conn.rooms], ['user:alice', 'everyone'], 'joining twice is a no-op')
  await conn.leave('user:alice')
  await conn.leave('never-joined')
  t.same([...conn.rooms], ['everyone'])
  t.same(app.realtime.rooms(), ['everyone'])
  await t.rejects(conn.join(''), TypeError, 'an invalid room name rejects')
  await t.rejects(conn.join('x'.repeat(129)), TypeError)
  t.same(await settle(a), [], 'the excepted broadcast did not arrive')
  // the client itself is still bound by canJoin
  t.match(await a.request({ type: 'join', room: 'user:alice', id: 1 }), { code: 'TOO_MANY_ROOMS' })
  a.ws.terminate()
})

t.test('route(def) adds a route before ready; after ready it throws', async (t) => {
  const app = await build(t, { heartbeat: false, closeGracePeriod: 0 })
  app.realtime.route({ path: '/late', messages: { hi: { schema: Type.Any(), handler: () => 'hello' } } })
  t.throws(() => app.realtime.route({ path: '/bad', messages: { join: { schema: Type.Any(), handler: () => {} } } }), { code: 'FST_REALTIME_INVALID_ROUTE' })
  await app.ready()
  const a = await inject(app, '/late', sign(app, 'alice'))
  t.same(await a.request({ type: 'hi', id: 1 }), { type: 'ack', id: 1, data: 'hello' })
  t.throws(() => app.realtime.route({ path: '/later', messages: {} }), {
    code: 'FST_REALTIME_ROUTE_AFTER_READY', message: /"\/later"/
  })
  a.ws.terminate()
})

t.test('invalid route definitions fail registration with FST_REALTIME_INVALID_ROUTE', async (t) => {
  const handler = () => {}
  const schema = Type.Any()
  const bad: Array<[string, unknown, RegExp]> = [
    ['not an object', 'chat', /must be an object/],
    ['null', null, /must be an object/],
    ['path without /', { path: 'chat', messages: {} }, /path must be a string starting with \//],
    ['path not a string', { path: 5, messages: {} }, /path/],
    ['no path', { messages: {} }, /path/],
    ['missing handler', { path: '/c', messages: { say: { schema } } }, /message "say" needs a handler function/],
    ['handler not a function', { path: '/c', messages: { say: { schema, handler: 'x' } } }, /handler/],
    ['message not an object', { path: '/c', messages: { say: null } }, /handler/],
    ['missing schema', { path: '/c', messages: { say: { handler } } }, /message "say" needs a TypeBox schema/],
    ['canJoin not a function', { path: '/c', canJoin: true }, /canJoin must be a function/],
    ['onConnect not a function', { path: '/c', onConnect: 'x' }, /onConnect must be a function/],
    ['onClose not a function', { path: '/c', onClose: 1 }, /onClose must be a function/],
    ['presence not a boolean', { path: '/c', presence: 'yes' }, /presence must be a boolean/]
  ]
  for (const type of ['join', 'leave', 'ping', 'auth', 'ack', 'pong', 'error', 'presence']) {
    bad.push([`reserved type ${type}`, { path: '/c', messages: { [type]: { schema, handler } } }, new RegExp(`message type "${type}" is reserved`)])
  }
  for (const [name, def, message] of bad) {
    const app = Fastify()
    await app.register(jwt, { secret: SECRET })
    await t.rejects(async () => { await app.register(realtime, { routes: [def] } as RealtimeOptions) }, { code: 'FST_REALTIME_INVALID_ROUTE', message }, name)
    await t.resolves(app.close(), `${name}: the app still closes`)
  }
})

t.test('onConnect, sync and async: messages wait until it finished', async (t) => {
  const events: string[] = []
  const app = await setup(t, {
    routes: [
      {
        path: '/async',
        async onConnect (conn) {
          events.push('connect start')
          await sleep(40)
          conn.user.ready = true
          events.push('connect end')
        },
        messages: { check: { schema: Type.Any(), handler: (conn) => { events.push('check'); return conn.user.ready === true } } }
      },
      {
        path: '/sync',
        onConnect (conn) { conn.user.ready = 'sync' },
        messages: { check: { schema: Type.Any(), handler: (conn) => conn.user.ready } }
      }
    ]
  })
  const a = await inject(app, '/async', sign(app, 'alice'))
  // sent the moment the socket opened, while onConnect is still waiting
  a.send({ type: 'check', id: 1 })
  a.send({ type: 'ping' })
  t.same(await a.next((m) => m.id === 1), { type: 'ack', id: 1, data: true })
  t.same(events, ['connect start', 'connect end', 'check'])
  t.same(await a.type('pong'), { type: 'pong' })
  const s = await inject(app, '/sync', sign(app, 'bob'))
  t.same(await s.request({ type: 'check', id: 1 }), { type: 'ack', id: 1, data: 'sync' })
  a.ws.terminate()
  s.ws.terminate()
})

t.test('onConnect that throws closes with 1011, logged', async (t) => {
  const logs = logCapture()
  const app = await setup(t, {
    routes: [{ path: '/s', messages: {}, onConnect () { throw new Error('onConnect bug') } }]
  }, { logger: { level: 'info', stream: logs.stream } })
  const a = await inject(app, '/s', sign(app, 'alice'))
  t.same(await closed(a.ws), { code: 1011, reason: 'internal error' })
  t.match(logs.lines.find((l) => l.level === 50), { err: { message: 'onConnect bug' } })
  a.ws.terminate()
})

t.test('onClose(conn, code, reason) over a real port', async (t) => {
  const logs = logCapture()
  const calls: Array<[string, number, string, string[]]> = []
  let throwing = false
  const app = await setup(t, {
    routes: [{
      path: '/s',
      messages: {},
      onClose (conn, code, reason) {
        calls.push([conn.sub!, code, reason, [...conn.rooms]])
        if (throwing) throw new Error('onClose bug')
      }
    }]
  }, { logger: { level: 'info', stream: logs.stream } })
  const url = await listen(app)
  const a = await connect(url + '/s', bearer(sign(app, 'alice')))
  await a.request({ type: 'join', room: 'r', id: 1 })
  a.ws.close(4000, 'client bye')
  await once(a.ws, 'close')
  for (let i = 0; i < 50 && calls.length === 0; i++) await sleep(5)
  t.same(calls, [['alice', 4000, 'client bye', []]], 'called once, after the connection left its rooms')

  const b = await connect(url + '/s', bearer(sign(app, 'bob')))
  app.realtime.connections()[0].close(4403, 'kicked')
  t.same(await closed(b.ws), { code: 4403, reason: 'kicked' })
  for (let i = 0; i < 50 && calls.length === 1; i++) await sleep(5)
  t.same(calls[1], ['bob', 4403, 'kicked', []], 'a server-side close too')

  throwing = true
  const c = await connect(url + '/s', bearer(sign(app, 'carol')))
  c.ws.terminate()
  for (let i = 0; i < 50 && calls.length === 2; i++) await sleep(5)
  t.same(calls[2], ['carol', 1006, '', []], 'an abrupt end is 1006')
  for (let i = 0; i < 50 && !logs.lines.some((l) => l.msg === 'onClose hook failed'); i++) await sleep(5)
  t.match(logs.lines.find((l) => l.msg === 'onClose hook failed'), { err: { message: 'onClose bug' } }, 'a throwing onClose is logged')
  t.equal(app.realtime.connections().length, 0)
  // the server still serves
  const d = await connect(url + '/s', bearer(sign(app, 'dave')))
  t.same(await d.request({ type: 'join', room: 'r', id: 1 }), { type: 'ack', id: 1, data: { room: 'r' } })
  d.ws.close()
  await once(d.ws, 'close')
})

t.test('over a real port: broadcast with except between ws clients', async (t) => {
  const app = await setup(t, { routes: [chatRoute] })
  const url = await listen(app)
  const a = await connect(url + '/s', bearer(sign(app, 'alice')))
  const b = await connect(url + '/s', bearer(sign(app, 'bob')))
  await a.request({ type: 'join', room: 'r', id: 1 })
  await b.request({ type: 'join', room: 'r', id: 1 })
  await a.request({ type: 'shout', room: 'r', id: 2, data: { text: 'hello' } })
  t.same(await b.type('said'), { type: 'said', room: 'r', data: { from: 'alice', text: 'hello' } })
  const from = b.messages.length
  await b.request({ type: 'say', room: 'r', id: 2, data: { text: 'back' } })
  t.same(await a.type('said'), { type: 'said', room: 'r', data: { from: 'bob', text: 'back' } })
  t.same(await until(b, from, (m) => m.type === 'said'), { type: 'said', room: 'r', data: { from: 'bob', text: 'back' } })
  t.equal(a.messages.filter((m) => m.type === 'said').length, 1, 'alice never got her own shout')
  const aId = app.realtime.connections().find((c) => c.sub === 'alice')!.id
  t.equal(app.realtime.send(aId, 'direct', 'x'), true)
  t.same(await a.type('direct'), { type: 'direct', data: 'x' })
  a.ws.close()
  b.ws.close()
  await Promise.all([once(a.ws, 'close'), once(b.ws, 'close')])
})

/** An adapter whose every call fails, sync or async, to prove local delivery goes on. */
class FailingAdapter implements Adapter {
  hub: AdapterHub | undefined
  readonly connected = false
  readonly published: Array<[string, string, readonly string[] | undefined]> = []
  attach (hub: AdapterHub): void { this.hub = hub }
  publish (room: string, payload: string, except?: readonly string[]): void {
    this.published.push([room, payload, except])
    throw new Error('publish failed')
  }

  async publishToUser (): Promise<void> { throw new Error('publishToUser failed') }
  async join (): Promise<void> { throw new Error('join failed') }
  leave (): void { throw new Error('leave failed') }
  async members (room: string): Promise<Member[]> { return this.hub!.localMembers(room) }
  async close (): Promise<void> {}
}

t.test('adapter failures are logged; local delivery goes on', async (t) => {
  const logs = logCapture()
  const adapter = new FailingAdapter()
  const app = await setup(t, { adapter, routes: [chatRoute] }, { logger: { level: 'warn', stream: logs.stream } })
  const a = await joined(app, 'alice', 'r')
  t.same(a.inbox.messages[0], { type: 'ack', id: 'r', data: { room: 'r' } }, 'the join stands although the adapter rejected')
  t.same(await a.inbox.request({ type: 'say', room: 'r', id: 1, data: { text: 'hi' } }), { type: 'ack', id: 1, data: 'ok' })
  t.same(a.inbox.messages.find((m) => m.type === 'said'), { type: 'said', room: 'r', data: { from: 'alice', text: 'hi' } })
  t.same(adapter.published, [['r', '{"type":"said","room":"r","data":{"from":"alice","text":"hi"}}', undefined]], 'the adapter got the serialised envelope')
  app.realtime.broadcast('r', 'x', 1, { except: ['nobody'] })
  t.same(adapter.published[1], ['r', '{"type":"x","room":"r","data":1}', ['nobody']], 'and the except list')
  app.realtime.sendToUser('alice', 'dm', 2)
  t.same(await a.inbox.type('dm'), { type: 'dm', data: 2 })
  t.same(await a.inbox.request({ type: 'leave', room: 'r', id: 2 }), { type: 'ack', id: 2, data: { room: 'r' } })
  t.equal(app.realtime.stats().adapter.connected, false)
  await sleep(5)
  const warnings = logs.lines.filter((l) => l.msg === 'fastify-realtime: adapter call failed').map((l) => l.err.message)
  t.same(warnings.sort(), ['join failed', 'leave failed', 'publish failed', 'publish failed', 'publishToUser failed'].sort())
  a.inbox.ws.terminate()
})

/** The in-memory adapter, with join and leave that take a while, like a remote store would. */
class SlowAdapter implements Adapter {
  readonly calls: string[] = []
  readonly #memory = new MemoryAdapter()
  readonly connected = true
  attach (hub: AdapterHub): void { this.#memory.attach(hub) }
  publish (): void {}
  publishToUser (): void {}
  async join (room: string, member: Member, first: boolean): Promise<void> {
    await sleep(10)
    this.calls.push(`join ${room} ${member.sub} first=${first}`)
  }

  async leave (room: string, member: Member, last: boolean): Promise<void> {
    await sleep(10)
    this.calls.push(`leave ${room} ${member.sub} last=${last}`)
  }

  async members (room: string): Promise<Member[]> { return await this.#memory.members(room) }
  async close (): Promise<void> { await this.#memory.close() }
}

t.test('an async adapter: join and leave acks wait for it', async (t) => {
  const adapter = new SlowAdapter()
  const app = await setup(t, { adapter, routes: [chatRoute] })
  const a = await inject(app, '/s', sign(app, 'alice'))
  const b = await inject(app, '/s', sign(app, 'bob'))
  t.same(await a.request({ type: 'join', room: 'r', id: 1 }), { type: 'ack', id: 1, data: { room: 'r' } })
  t.same(adapter.calls, ['join r alice first=true'], 'acked after the adapter finished')
  await b.request({ type: 'join', room: 'r', id: 1 })
  t.same(await b.request({ type: 'leave', room: 'r', id: 2 }), { type: 'ack', id: 2, data: { room: 'r' } })
  t.same(adapter.calls.slice(1), ['join r bob first=false', 'leave r bob last=false'])
  a.send({ type: 'leave', room: 'r' })
  a.send({ type: 'say', room: 'r', id: 3, data: { text: 'after leave' } })
  t.match(await a.next((m) => m.id === 3), { code: 'NOT_IN_ROOM' }, 'the next message waits for the leave')
  t.same(adapter.calls.slice(3), ['leave r alice last=true'])
  a.ws.terminate()
  b.ws.terminate()
})
