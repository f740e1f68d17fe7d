// What a hostile peer or a careless app found (issue 11, server items 5, 6, 7,
// 10 and 11): a failed onConnect frees its slot at once, error and join-ack
// replies are bounded, room names cannot collide or lie, rooms guarded on one
// route stay guarded on every route, and an adapter that never answers does not
// freeze a connection.
import t from 'tap'
import { connect as tcpConnect, type Socket } from 'node:net'
import { once } from 'node:events'
import { Type } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { MemoryAdapter, RealtimeError, type Member } from '../lib/index.js'
import { MAX_ERROR_BYTES } from '../lib/envelope.js'
import { closed, connect, hub, inject, listen, sign, only } from './helpers.js'
import { within } from './helpers/wait.js'
import { logCapture, settle, setup } from './protocol-helpers.js'

/**
 * A WebSocket client written by hand that upgrades and then never says another
 * word: it never answers a close frame (ws would).
 */
async function silentClient (url: string, path: string, token: string): Promise<Socket> {
  const { hostname, port } = new URL(url)
  const socket = tcpConnect(Number(port), hostname)
  await once(socket, 'connect')
  socket.write([
    `GET ${path} HTTP/1.1`, `Host: ${hostname}:${port}`, 'Upgrade: websocket', 'Connection: Upgrade',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13', `Authorization: Bearer ${token}`, '', ''
  ].join('\r\n'))
  const [head] = await once(socket, 'data') as [Buffer]
  if (!head.toString().startsWith('HTTP/1.1 101')) throw new Error(`not upgraded: ${head.toString().split('\r\n')[0]}`)
  return socket
}

// Item 5
t.test('onConnect failing: 1011 at once, and the client\'s close reply is read, so the slot is free long before closeGracePeriod', async (t) => {
  const logs = logCapture()
  const app = await setup(t, {
    closeGracePeriod: 5000,
    maxConnections: 1,
    routes: [{ path: '/rt', onConnect: async () => { throw new Error('database down') } }]
  }, { logger: { level: 'error', stream: logs.stream } })
  const url = await listen(app)
  for (let i = 0; i < 3; i++) {
    const start = Date.now()
    const client = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, `user${i}`)}` } })
    t.same(await within(closed(client.ws), 2000, 'the 1011 close'), { code: 1011, reason: 'internal error' }, `connect ${i}: closed with 1011`)
    const freed = await within(waitFor(() => hub(app).limits.active === 0 && app.realtime.connections().length === 0), 1000, 'the freed slot')
    t.ok(freed, `connect ${i}: the only slot is free ${Date.now() - start} ms after the upgrade (closeGracePeriod is 5000 ms)`)
  }
  t.equal(logs.lines.filter((l) => l.msg === 'fastify-realtime: onConnect failed').length, 3, 'each failure is logged')
})

t.test('onConnect failing: a client that never answers the close is dropped after closeGracePeriod, and its slot freed', async (t) => {
  const grace = 300
  const app = await setup(t, {
    closeGracePeriod: grace,
    maxConnections: 1,
    routes: [{ path: '/rt', onConnect: () => Promise.reject(new Error('nope')) }, { path: '/ok' }]
  })
  const url = await listen(app)
  const silent = await silentClient(url, '/rt', sign(app, 'mute'))
  const start = Date.now()
  const ended = once(silent, 'close')
  await within(ended, grace + 1500, 'the server dropping the silent client')
  const elapsed = Date.now() - start
  t.ok(elapsed >= grace - 50, `not dropped before the grace period (${elapsed} ms)`)
  t.ok(elapsed <= grace + 1000, `dropped ${elapsed} ms after the upgrade (closeGracePeriod ${grace} ms; ws alone waits 30 s)`)
  await within(waitFor(() => hub(app).limits.active === 0), 1000, 'the freed slot')
  const next = await connect(`${url}/ok`, { headers: { authorization: `Bearer ${sign(app, 'next')}` } })
  t.pass('the next client gets the only slot')
  next.ws.terminate()
})

async function waitFor (check: () => boolean): Promise<true> {
  while (!check()) await new Promise((resolve) => setTimeout(resolve, 5))
  return true
}

// Item 6
t.test('amplification: a 60 KB message with long keys failing its schema draws a reply of at most 8 KiB', async (t) => {
  const fields = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`f${i}`, Type.String()]))
  const schema = Type.Record(Type.String(), Type.Object(fields))
  const app = await setup(t, { routes: [{ path: '/rt', messages: { put: { schema, handler: () => 'ok' } } }] })
  const inbox = await inject(app, '/rt', sign(app, 'mallory'))

  // keys full of '/', which JSON Pointer escapes to '~1': each path doubles its key
  const data = { ['/'.repeat(30_000)]: {}, ['~'.repeat(29_000)]: {} }
  const message = JSON.stringify({ type: 'put', id: 1, data })
  t.ok(message.length >= 59_000 && message.length <= 65_536, `the message is ${message.length} bytes`)

  // what the reply was before the cap: every detail (up to 20) with its full path
  const check = TypeCompiler.Compile(schema)
  const uncapped = []
  for (const error of check.Errors(data)) {
    uncapped.push({ path: error.path, message: error.message })
    if (uncapped.length >= 20) break
  }
  const before = Buffer.byteLength(JSON.stringify({ type: 'error', id: 1, code: 'INVALID_MESSAGE', message: 'Message data does not match its schema', details: uncapped }))

  const raw: Buffer[] = []
  inbox.ws.on('message', (frame: Buffer) => raw.push(frame))
  inbox.send(message)
  const reply = await inbox.type('error')
  const size = raw[0].length
  t.comment(`INVALID_MESSAGE reply to a ${message.length}-byte message: ${before} bytes uncapped, ${size} bytes sent`)
  t.ok(before > 1_000_000, `uncapped, the reply would be ${before} bytes`)
  t.ok(size <= MAX_ERROR_BYTES, `the reply is ${size} bytes (at most ${MAX_ERROR_BYTES})`)
  t.match(reply, { type: 'error', id: 1, code: 'INVALID_MESSAGE' })
  t.ok(reply.details.length >= 1, 'it still lists details')
  t.ok(reply.details.every((d: { path: string }) => d.path.length <= 256), 'each path cut to 256 characters')
  t.ok(reply.details[0].path.startsWith('/~1~1~1'), 'a cut path still starts as the real one does')
  inbox.ws.terminate()
})

t.test('amplification: a RealtimeError\'s long message and details are bounded too', async (t) => {
  const app = await setup(t, {
    routes: [{
      path: '/rt',
      messages: {
        fail: {
          schema: Type.Any(),
          handler () {
            throw new RealtimeError('é'.repeat(20_000), { code: 'BIG', details: Array.from({ length: 500 }, (_, i) => ({ path: `/${i}`, message: 'x'.repeat(200) })) })
          }
        }
      }
    }]
  })
  const inbox = await inject(app, '/rt', sign(app, 'a'))
  const raw: Buffer[] = []
  inbox.ws.on('message', (frame: Buffer) => raw.push(frame))
  const reply = await inbox.request({ type: 'fail', id: 'x'.repeat(128) })
  t.ok(raw[0].length <= MAX_ERROR_BYTES, `${raw[0].length} bytes, UTF-8 counted`)
  t.match(reply, { type: 'error', code: 'BIG', id: 'x'.repeat(128) })
  t.ok(reply.details === undefined || reply.details.length < 500, 'details shortened')
  inbox.ws.terminate()
})

/** The in-memory adapter, reporting `extra` members on other instances for every room. */
class CrowdedAdapter extends MemoryAdapter {
  constructor (readonly extra: number) {
    super()
  }

  override async members (room: string): Promise<Member[]> {
    const here = await super.members(room)
    return [...here, ...Array.from({ length: this.extra }, (_, i) => ({ id: `remote-instance.${i.toString(36)}`, sub: `user-${i}` }))]
  }
}

t.test('a presence join ack of a 2,000-member room lists 1000 members and the total', async (t) => {
  const app = await setup(t, { adapter: new CrowdedAdapter(1999), routes: [{ path: '/p', presence: true }] })
  const inbox = await inject(app, '/p', sign(app, 'alice'))
  const raw: Buffer[] = []
  inbox.ws.on('message', (frame: Buffer) => raw.push(frame))
  const request = JSON.stringify({ type: 'join', room: 'big', id: 1 })
  inbox.send(request)
  const ack = await inbox.type('ack')
  t.equal(ack.data.room, 'big')
  t.equal(ack.data.total, 2000)
  t.equal(ack.data.members.length, 1000)
  t.same(ack.data.members[0], { id: only(app).id, sub: 'alice' }, 'local members first')
  const full = JSON.stringify({ type: 'ack', id: 1, data: { room: 'big', members: await app.realtime.members('big'), total: 2000 } }).length
  t.comment(`join ack for a ${request.length}-byte join: ${raw[0].length} bytes (all 2000 members: ${full} bytes)`)
  t.ok(raw[0].length < full / 1.8, 'about half the uncapped ack')

  t.same((await inbox.request({ type: 'join', room: 'big', id: 2 })).data.members.length, 1000, 'joining again is capped as well')
  inbox.ws.terminate()
})

// Item 7
const BAD_ROOMS: Array<[string, string]> = [
  ['x\ud800', 'a lone high surrogate'],
  ['x\udc00y', 'a lone low surrogate'],
  ['\ud800', 'only a lone surrogate'],
  ['pay\u202eusd', 'RIGHT-TO-LEFT OVERRIDE'],
  ['a\u202ab', 'LEFT-TO-RIGHT EMBEDDING'],
  ['a\u2066b', 'LEFT-TO-RIGHT ISOLATE'],
  ['a\u2069', 'POP DIRECTIONAL ISOLATE']
]

t.test('room names that are not well-formed text or carry bidi controls are refused over the wire: INVALID_ROOM', async (t) => {
  const app = await setup(t, { routes: [{ path: '/rt', messages: { say: { schema: Type.Any(), handler: () => 'ok' } } }] })
  const inbox = await inject(app, '/rt', sign(app, 'alice'))
  let id = 0
  for (const [room, what] of BAD_ROOMS) {
    // JSON.stringify escapes a lone surrogate (\ud800), so it reaches the server as it is, not as U+FFFD
    t.match(await inbox.request({ type: 'join', room, id: ++id }), { type: 'error', id, code: 'INVALID_ROOM' }, `join: ${what}`)
    t.match(await inbox.request({ type: 'leave', room, id: ++id }), { type: 'error', id, code: 'INVALID_ROOM' }, `leave: ${what}`)
    t.match(await inbox.request({ type: 'say', room, id: ++id }), { type: 'error', id, code: 'INVALID_ROOM' }, `a message to it: ${what}`)
  }
  t.same(app.realtime.rooms(), [])
  t.same(await inbox.request({ type: 'join', room: 'emoji 😀 ok', id: 'pair' }), { type: 'ack', id: 'pair', data: { room: 'emoji 😀 ok' } }, 'a surrogate pair is fine')
  t.same(await inbox.request({ type: 'join', room: 'שלום', id: 'rtl' }), { type: 'ack', id: 'rtl', data: { room: 'שלום' } }, 'right-to-left text itself is fine')
  inbox.ws.terminate()
})

/** The in-memory adapter, keeping what it was asked to publish. */
class RecordingAdapter extends MemoryAdapter {
  readonly published: unknown[] = []
  override publish (...args: unknown[]): void {
    this.published.push(args[0])
  }
}

t.test('server APIs throw FST_REALTIME_INVALID_ROOM (a TypeError) for such rooms, and never publish them', async (t) => {
  const adapter = new RecordingAdapter()
  const logs = logCapture()
  const app = await setup(t, {
    adapter,
    routes: [{
      path: '/rt',
      messages: {
        // the quick start's handler: a client that omits `room` makes msg.room undefined
        'chat.send': { schema: Type.Any(), handler: (conn, data, msg) => { conn.broadcast(msg.room!, 'chat.message', data) } }
      }
    }]
  }, { logger: { level: 'error', stream: logs.stream } })
  const inbox = await inject(app, '/rt', sign(app, 'alice'))
  const conn = only(app)
  // a coded TypeError (@fastify/error names it FastifyError)
  const isInvalidRoom = (err: unknown): boolean => err instanceof TypeError && (err as { code?: unknown }).code === 'FST_REALTIME_INVALID_ROOM'
  const throwsInvalid = (call: () => unknown, what: string): void => {
    try {
      call()
      t.fail(`${what}: did not throw`)
    } catch (err) {
      t.ok(isInvalidRoom(err), what)
    }
  }
  const rejectsInvalid = async (promise: Promise<unknown>, what: string): Promise<void> => {
    await promise.then(() => t.fail(`${what}: did not reject`), (err: unknown) => t.ok(isInvalidRoom(err), what))
  }
  for (const [room, what] of BAD_ROOMS) {
    throwsInvalid(() => app.realtime.broadcast(room, 't'), `app.realtime.broadcast: ${what}`)
    throwsInvalid(() => conn.broadcast(room, 't'), `conn.broadcast: ${what}`)
    throwsInvalid(() => conn.send('t', {}, room), `conn.send with a room: ${what}`)
    await rejectsInvalid(conn.join(room), `conn.join: ${what}`)
  }
  for (const room of [undefined, null, 42, '', 'x'.repeat(129)]) {
    throwsInvalid(() => conn.broadcast(room as any, 't'), `conn.broadcast(${JSON.stringify(room)})`)
    throwsInvalid(() => app.realtime.broadcast(room as any, 't'), `app.realtime.broadcast(${JSON.stringify(room)})`)
    await rejectsInvalid(conn.join(room as any), `conn.join(${JSON.stringify(room)})`)
  }
  throwsInvalid(() => conn.send('t', {}, null as any), 'conn.send with a null room')
  t.ok(conn.send('t', { n: 1 }), 'conn.send without a room still works')
  t.ok(conn.send('t', { n: 2 }, 'fine'), 'and with a valid one')

  t.match(await inbox.request({ type: 'chat.send', id: 1, data: { text: 'hi' } }), { type: 'error', id: 1, code: 'HANDLER_ERROR' }, 'the quick start without a room answers HANDLER_ERROR')
  t.same(adapter.published, [], 'nothing was ever published, "undefined" least of all')
  t.same(app.realtime.rooms(), [])
  t.match(logs.lines.find((l) => l.msg === 'fastify-realtime: message handler failed'), { err: { code: 'FST_REALTIME_INVALID_ROOM' } }, 'the handler\'s mistake is logged with its code')
  await settle(inbox)
  t.same(inbox.messages.filter((m) => m.type === 't'), [{ type: 't', data: { n: 1 } }, { type: 't', room: 'fine', data: { n: 2 } }], 'only the valid sends went out')
  inbox.ws.terminate()
})

// Item 10
t.test('a plugin-level canJoin guards every route without its own; a route\'s own canJoin replaces it', async (t) => {
  const calls: string[] = []
  const app = await setup(t, {
    canJoin: (conn, room) => {
      calls.push(`${conn.sub} ${room}`)
      return !room.startsWith('admin:') || (conn.user as any).admin === true
    },
    routes: [
      { path: '/public' },
      { path: '/staff', canJoin: () => true },
      { path: '/strict', canJoin: (_conn, room) => room === 'only' }
    ]
  })
  const viaPublic = await inject(app, '/public', sign(app, 'eve'))
  t.match(await viaPublic.request({ type: 'join', room: 'admin:ops', id: 1 }), { type: 'error', code: 'FORBIDDEN' }, 'a route without canJoin inherits the plugin\'s')
  t.same(await viaPublic.request({ type: 'join', room: 'lobby', id: 2 }), { type: 'ack', id: 2, data: { room: 'lobby' } })
  const admin = await inject(app, '/public', sign(app, 'root', { admin: true }))
  t.same(await admin.request({ type: 'join', room: 'admin:ops', id: 3 }), { type: 'ack', id: 3, data: { room: 'admin:ops' } })
  app.realtime.broadcast('admin:ops', 'secret')
  await settle(viaPublic)
  t.notOk(viaPublic.messages.some((m) => m.type === 'secret'), 'the refused client gets none of the guarded room')
  t.same(calls, ['eve admin:ops', 'eve lobby', 'root admin:ops'])

  const staff = await inject(app, '/staff', sign(app, 'sam'))
  t.same(await staff.request({ type: 'join', room: 'admin:ops', id: 4 }), { type: 'ack', id: 4, data: { room: 'admin:ops' } }, 'a route\'s own canJoin decides for it')
  const strict = await inject(app, '/strict', sign(app, 'sue'))
  t.match(await strict.request({ type: 'join', room: 'lobby', id: 5 }), { code: 'FORBIDDEN' }, 'the plugin\'s rule does not widen a route\'s own')
  t.equal(calls.length, 3, 'the plugin canJoin was not asked for routes with their own')
  for (const inbox of [viaPublic, admin, staff, strict]) inbox.ws.terminate()
})

t.test('a route added with app.realtime.route() inherits the plugin-level canJoin too', async (t) => {
  const { build } = await import('./helpers.js')
  const app = await build(t, { heartbeat: false, closeGracePeriod: 0, canJoin: (_conn, room) => room !== 'vip' })
  app.realtime.route({ path: '/late' })
  await app.ready()
  const inbox = await inject(app, '/late', sign(app, 'x'))
  t.match(await inbox.request({ type: 'join', room: 'vip', id: 1 }), { code: 'FORBIDDEN' })
  t.same(await inbox.request({ type: 'join', room: 'hall', id: 2 }), { type: 'ack', id: 2, data: { room: 'hall' } })
  inbox.ws.terminate()
})

t.test('a plugin-level canJoin that is not a function fails register, naming the option', async (t) => {
  await t.rejects(setup(t, { canJoin: 'yes' as any }), { code: 'FST_REALTIME_INVALID_OPTION', message: /"canJoin"/ })
})

// Item 11
/** An adapter whose calls never settle, as a custom adapter over a hung store would. */
class HungAdapter extends MemoryAdapter {
  override join (): Promise<void> {
    return new Promise(() => {})
  }

  override leave (): Promise<void> {
    return new Promise(() => {})
  }

  override members (): Promise<Member[]> {
    return new Promise(() => {})
  }
}

t.test('a custom adapter that never settles does not freeze the connection: adapterTimeout bounds each call', async (t) => {
  const logs = logCapture()
  const timeout = 150
  const app = await setup(t, { adapter: new HungAdapter(), adapterTimeout: timeout, routes: [{ path: '/rt' }, { path: '/p', presence: true }] },
    { logger: { level: 'warn', stream: logs.stream } })
  const inbox = await inject(app, '/rt', sign(app, 'alice'))

  let start = Date.now()
  t.same(await within(inbox.request({ type: 'join', room: 'r', id: 1 }), 3000, 'the join ack'), { type: 'ack', id: 1, data: { room: 'r' } })
  const joinMs = Date.now() - start
  t.ok(joinMs >= timeout - 20 && joinMs < timeout + 1000, `the join was acked after ${joinMs} ms (adapterTimeout ${timeout} ms)`)
  inbox.send({ type: 'ping' })
  t.same(await within(inbox.type('pong'), 1000, 'the next message'), { type: 'pong' }, 'the next message is answered')
  t.same(await within(inbox.request({ type: 'leave', room: 'r', id: 2 }), 3000, 'the leave ack'), { type: 'ack', id: 2, data: { room: 'r' } })

  const p = await inject(app, '/p', sign(app, 'bob'))
  start = Date.now()
  const ack = await within(p.request({ type: 'join', room: 'q', id: 3 }), 3000, 'the presence join ack')
  t.same(ack, { type: 'ack', id: 3, data: { room: 'q', members: [{ id: app.realtime.connections()[1].id, sub: 'bob' }], total: 1 } },
    'members() that never answers: the ack lists this instance\'s members')
  t.ok(Date.now() - start < 2 * timeout + 1000, `after ${Date.now() - start} ms (two adapter calls)`)
  t.same(await within(app.realtime.members('q'), 1000, 'members()'), [{ id: app.realtime.connections()[1].id, sub: 'bob' }], 'app.realtime.members too')
  t.ok(logs.lines.some((l) => l.msg === `fastify-realtime: the adapter did not answer within ${timeout} ms; going on without it`), 'the timeout is logged')
  inbox.ws.terminate()
  p.ws.terminate()
})

t.test('adapterTimeout is validated', async (t) => {
  await t.rejects(setup(t, { adapterTimeout: 0 }), { code: 'FST_REALTIME_INVALID_OPTION', message: /"adapterTimeout"/ })
})
