import t from 'tap'
import { Kind, Type, TypeRegistry } from '@sinclair/typebox'
import { RealtimeError } from '../lib/index.js'
import type { Connection } from '../lib/index.js'
import { closed, hub, inject, sign, sleep } from './helpers.js'
import { logCapture, settle, setup } from './protocol-helpers.js'

const textSchema = Type.Object({ text: Type.String({ minLength: 1 }), n: Type.Optional(Type.Integer({ minimum: 0 })) })

t.test('ping is answered with a bare pong', async (t) => {
  const app = await setup(t, { routes: [{ path: '/d', messages: {} }] })
  const a = await inject(app, '/d', sign(app, 'alice'))
  a.send({ type: 'ping', id: 5, data: { ignored: true } })
  await settle(a)
  t.same(a.messages, [{ type: 'pong' }, { type: 'pong' }], 'exactly {"type":"pong"} for each ping: no id, no ack')
  a.ws.terminate()
})

t.test('join and leave: acks only when an id was given', async (t) => {
  const app = await setup(t, { routes: [{ path: '/d', messages: {} }] })
  const a = await inject(app, '/d', sign(app, 'alice'))
  t.same(await a.request({ type: 'join', room: 'r1', id: 1 }), { type: 'ack', id: 1, data: { room: 'r1' } })
  t.same(await a.request({ type: 'join', room: 'r2', id: 'two' }), { type: 'ack', id: 'two', data: { room: 'r2' } })
  a.send({ type: 'join', room: 'r3' })
  t.same(await settle(a), [], 'no ack for a join without id')
  const conn = app.realtime.connections()[0]
  t.same([...conn.rooms].sort(), ['r1', 'r2', 'r3'], 'the id-less join happened all the same')

  t.same(await a.request({ type: 'join', room: 'r1', id: 3 }), { type: 'ack', id: 3, data: { room: 'r1' } }, 'joining again acks again')
  t.same(await app.realtime.members('r1'), [{ id: conn.id, sub: 'alice' }], 'and is still one membership')

  t.same(await a.request({ type: 'leave', room: 'r1', id: 4 }), { type: 'ack', id: 4, data: { room: 'r1' } })
  a.send({ type: 'leave', room: 'r2' })
  t.same(await settle(a), [], 'no ack for a leave without id')
  t.same([...conn.rooms], ['r3'])
  t.same(app.realtime.rooms(), ['r3'], 'left rooms are gone at once')
  a.ws.terminate()
})

t.test('UNKNOWN_TYPE names the type', async (t) => {
  const app = await setup(t, { routes: [{ path: '/d', messages: { known: { schema: Type.Any(), handler: () => 'ok' } } }] })
  const a = await inject(app, '/d', sign(app, 'alice'))
  t.same(await a.request({ type: 'unknown.thing', id: 1 }), { type: 'error', id: 1, code: 'UNKNOWN_TYPE', message: 'Unknown message type "unknown.thing"' })
  for (const type of ['ack', 'pong', 'error', 'presence']) {
    t.match(await a.request({ type, id: type }), { type: 'error', id: type, code: 'UNKNOWN_TYPE' }, `the server-to-client type ${type} is not a client message`)
  }
  a.send({ type: 'nope' })
  t.match(await settle(a), [{ type: 'error', code: 'UNKNOWN_TYPE' }], 'an error is sent even without id, just without one')
  t.same(await a.request({ type: 'known', id: 2 }), { type: 'ack', id: 2, data: 'ok' })
  a.ws.terminate()
})

t.test('INVALID_MESSAGE lists each failing path with its message', async (t) => {
  let calls = 0
  const app = await setup(t, {
    routes: [{ path: '/d', messages: { say: { schema: textSchema, handler: () => { calls++ } } } }]
  })
  const a = await inject(app, '/d', sign(app, 'alice'))
  const err = await a.request({ type: 'say', id: 1, data: { text: '', n: -1.5, extra: true } })
  t.match(err, { type: 'error', id: 1, code: 'INVALID_MESSAGE', message: 'Message data does not match its schema' })
  t.ok(Array.isArray(err.details))
  const paths = new Set(err.details.map((d: { path: string }) => d.path))
  t.same([...paths].sort(), ['/n', '/text'], 'both failing fields are listed')
  for (const d of err.details) {
    t.same(Object.keys(d).sort(), ['message', 'path'])
    t.type(d.message, 'string')
    t.ok(d.message.length > 0)
  }
  t.ok(err.details.some((d: { path: string, message: string }) => d.path === '/text' && /length/i.test(d.message)), 'the message says what is wrong')

  const missing = await a.request({ type: 'say', id: 2 })
  t.match(missing, { code: 'INVALID_MESSAGE', details: [{ path: '/' }] }, 'absent data fails at the root')
  const wrongType = await a.request({ type: 'say', id: 3, data: 'text' })
  t.match(wrongType, { code: 'INVALID_MESSAGE', details: [{ path: '/' }] })
  t.equal(calls, 0, 'the handler never ran')
  t.same(await a.request({ type: 'say', id: 4, data: { text: 'ok', n: 2 } }), { type: 'ack', id: 4 }, 'a valid message passes')
  t.equal(calls, 1)
  a.ws.terminate()
})

t.test('a schema check that throws is INVALID_MESSAGE, not a crash', async (t) => {
  TypeRegistry.Set('ThrowsOnCheck', () => { throw new RangeError('Maximum call stack size exceeded') })
  t.teardown(() => TypeRegistry.Delete('ThrowsOnCheck'))
  const Node = Type.Recursive((self) => Type.Object({ next: Type.Optional(self) }))
  const app = await setup(t, {
    routes: [{
      path: '/d',
      messages: {
        weird: { schema: Type.Unsafe({ [Kind]: 'ThrowsOnCheck' }), handler: () => 'never' },
        linked: { schema: Node, handler: () => 'checked' }
      }
    }]
  })
  const a = await inject(app, '/d', sign(app, 'alice'))
  t.same(await a.request({ type: 'weird', id: 1, data: {} }), {
    type: 'error', id: 1, code: 'INVALID_MESSAGE', message: 'Message data does not match its schema', details: [{ path: '/', message: 'Data could not be validated (nested too deeply?)' }]
  })
  // a recursive schema against 10k levels of nesting: answered either way, the process lives on
  const deep = '{"next":'.repeat(7000) + '{}' + '}'.repeat(7000)
  a.send(`{"type":"linked","id":2,"data":${deep}}`)
  const answer = await a.next((m) => m.id === 2)
  t.ok(answer.type === 'ack' || answer.code === 'INVALID_MESSAGE', `deep data answered (${answer.type})`)
  t.same(await a.request({ type: 'linked', id: 3, data: { next: {} } }), { type: 'ack', id: 3, data: 'checked' })
  a.ws.terminate()
})

t.test('handler return values become the ack data; no ack without id', async (t) => {
  const seen: unknown[] = []
  const app = await setup(t, {
    routes: [{
      path: '/d',
      messages: {
        sync: { schema: Type.Any(), handler: (_conn, data) => { seen.push(data); return { echo: data } } },
        async: { schema: Type.Any(), handler: async (_conn, data) => { await sleep(5); seen.push(data); return { later: data } } },
        nothing: { schema: Type.Any(), handler: () => undefined },
        falsy: { schema: Type.Any(), handler: async () => 0 },
        nullish: { schema: Type.Any(), handler: () => null },
        thenable: { schema: Type.Any(), handler: () => ({ then (resolve: (v: unknown) => void) { resolve('from a thenable') } }) }
      }
    }]
  })
  const a = await inject(app, '/d', sign(app, 'alice'))
  t.same(await a.request({ type: 'sync', id: 1, data: 'x' }), { type: 'ack', id: 1, data: { echo: 'x' } })
  t.same(await a.request({ type: 'async', id: 2, data: 'y' }), { type: 'ack', id: 2, data: { later: 'y' } })
  t.same(await a.request({ type: 'nothing', id: 3 }), { type: 'ack', id: 3 }, 'undefined: an ack without data')
  t.same(await a.request({ type: 'falsy', id: 4 }), { type: 'ack', id: 4, data: 0 })
  t.same(await a.request({ type: 'nullish', id: 5 }), { type: 'ack', id: 5, data: null })
  t.same(await a.request({ type: 'thenable', id: 6 }), { type: 'ack', id: 6, data: 'from a thenable' })
  t.same(await a.request({ type: 'sync', id: 0, data: 'zero id' }), { type: 'ack', id: 0, data: { echo: 'zero id' } }, 'id 0 is an id')
  a.send({ type: 'sync', data: 'no id' })
  a.send({ type: 'async', data: 'no id either' })
  t.same(await settle(a), [], 'no ack without id')
  t.same(seen.slice(-2), ['no id', 'no id either'], 'but the handlers ran')
  a.ws.terminate()
})

t.test('handler receives the connection, the validated data and the envelope', async (t) => {
  let got: [Connection, unknown, unknown] | undefined
  const app = await setup(t, {
    routes: [{ path: '/d', messages: { say: { schema: textSchema, handler: (conn, data, msg) => { got = [conn, data, msg] } } } }]
  })
  const a = await inject(app, '/d', sign(app, 'alice', { role: 'admin' }))
  await a.request({ type: 'join', room: 'r', id: 1 })
  await a.request({ type: 'say', room: 'r', id: 2, data: { text: 'hi' } })
  t.ok(got)
  const [conn, data, msg] = got!
  t.equal(conn, app.realtime.connections()[0])
  t.match(conn.user, { sub: 'alice', role: 'admin' })
  t.same(data, { text: 'hi' })
  t.same(msg, { type: 'say', room: 'r', id: 2, data: { text: 'hi' } })
  a.ws.terminate()
})

t.test('HANDLER_ERROR: logged with the connection id, sent without message or stack', async (t) => {
  const logs = logCapture()
  const secret = 'db password is hunter2'
  const app = await setup(t, {
    routes: [{
      path: '/d',
      messages: {
        boom: { schema: Type.Any(), handler: () => { throw new Error(secret) } },
        reject: { schema: Type.Any(), handler: async () => { await sleep(1); throw new Error(secret + ' async') } },
        str: { schema: Type.Any(), handler: () => { throw secret } },
        bigint: { schema: Type.Any(), handler: () => ({ n: 1n }) }
      }
    }]
  }, { logger: { level: 'info', stream: logs.stream } })
  const a = await inject(app, '/d', sign(app, 'alice'))
  const connId = app.realtime.connections()[0].id
  const expected = { type: 'error', code: 'HANDLER_ERROR', message: 'The handler failed' }
  t.same(await a.request({ type: 'boom', id: 1 }), { ...expected, id: 1 })
  t.same(await a.request({ type: 'reject', id: 2 }), { ...expected, id: 2 }, 'an async rejection too')
  t.same(await a.request({ type: 'str', id: 3 }), { ...expected, id: 3 }, 'a thrown non-Error too')
  t.same(await a.request({ type: 'bigint', id: 4 }), { ...expected, id: 4 }, 'a return value that cannot be serialised too')
  a.send({ type: 'boom' })
  t.same(await settle(a), [expected], 'without id: the error without id')

  const wire = JSON.stringify(a.messages)
  t.notMatch(wire, /hunter2/, 'the original message never reaches the client')
  t.notMatch(wire, /dispatch|\.ts:\d+|at /, 'nor a stack trace')

  const failures = logs.lines.filter((l) => l.msg === 'fastify-realtime: message handler failed')
  t.equal(failures.length, 5, 'each failure is logged')
  for (const line of failures) {
    t.equal(line.connId, connId, 'with the connection id')
    t.equal(line.level, 50, 'at error level')
  }
  t.match(failures[0].err, { type: 'Error', message: secret, stack: /Error: db password/ }, 'with the error and its stack')
  t.match(failures[1].err, { message: secret + ' async' })
  t.match(failures[3].err, { type: 'TypeError', message: /BigInt/ })
  t.equal(app.realtime.stats().errors, 5)
  t.equal(a.ws.readyState, a.ws.OPEN, 'the connection stays open')
  a.ws.terminate()
})

t.test('a RealtimeError sends its message, code and details', async (t) => {
  const logs = logCapture()
  const app = await setup(t, {
    routes: [{
      path: '/d',
      messages: {
        full: { schema: Type.Any(), handler: () => { throw new RealtimeError('room is full', { code: 'ROOM_FULL', details: [{ capacity: 2 }] }) } },
        plain: { schema: Type.Any(), handler: async () => { throw new RealtimeError('try later') } }
      }
    }]
  }, { logger: { level: 'info', stream: logs.stream } })
  const a = await inject(app, '/d', sign(app, 'alice'))
  t.same(await a.request({ type: 'full', id: 1 }), { type: 'error', id: 1, code: 'ROOM_FULL', message: 'room is full', details: [{ capacity: 2 }] })
  t.same(await a.request({ type: 'plain', id: 2 }), { type: 'error', id: 2, code: 'HANDLER_ERROR', message: 'try later' }, 'async, code defaults to HANDLER_ERROR')
  t.notOk(JSON.stringify(a.messages).includes('stack'))
  t.equal(logs.lines.filter((l) => l.level >= 50).length, 0, 'a deliberate error is not logged as a failure')
  a.ws.terminate()
})

t.test('FORBIDDEN when canJoin says no, sync or async', async (t) => {
  const asked: Array<[string | null, string]> = []
  const app = await setup(t, {
    routes: [{
      path: '/d',
      messages: {},
      canJoin (conn, room) {
        asked.push([conn.sub, room])
        if (room.startsWith('sync:')) return room === 'sync:yes'
        if (room.startsWith('async:')) return sleep(5).then(() => room === 'async:yes')
        if (room === 'undefined') return undefined
        if (room === 'truthy') return 'yes' as unknown as boolean
        return conn.user.rooms?.includes(room)
      }
    }]
  })
  const a = await inject(app, '/d', sign(app, 'alice', { rooms: ['mine'] }))
  const forbidden = { type: 'error', code: 'FORBIDDEN', message: 'Not allowed to join this room' }
  t.same(await a.request({ type: 'join', room: 'sync:yes', id: 1 }), { type: 'ack', id: 1, data: { room: 'sync:yes' } })
  t.same(await a.request({ type: 'join', room: 'sync:no', id: 2 }), { ...forbidden, id: 2 })
  t.same(await a.request({ type: 'join', room: 'async:yes', id: 3 }), { type: 'ack', id: 3, data: { room: 'async:yes' } })
  t.same(await a.request({ type: 'join', room: 'async:no', id: 4 }), { ...forbidden, id: 4 })
  t.same(await a.request({ type: 'join', room: 'undefined', id: 5 }), { ...forbidden, id: 5 }, 'undefined is a no')
  t.same(await a.request({ type: 'join', room: 'truthy', id: 6 }), { ...forbidden, id: 6 }, 'only true is a yes')
  t.same(await a.request({ type: 'join', room: 'mine', id: 7 }), { type: 'ack', id: 7, data: { room: 'mine' } }, 'claims drive canJoin')
  a.send({ type: 'join', room: 'sync:no' })
  t.same(await settle(a), [{ type: 'error', code: 'FORBIDDEN', message: 'Not allowed to join this room' }])
  t.same([...app.realtime.connections()[0].rooms].sort(), ['async:yes', 'mine', 'sync:yes'])
  t.same(app.realtime.rooms().sort(), ['async:yes', 'mine', 'sync:yes'], 'refused joins create no room')
  t.same(asked[0], ['alice', 'sync:yes'], 'canJoin gets the connection and the room')
  a.ws.terminate()
})

t.test('canJoin that throws or rejects: HANDLER_ERROR (or its RealtimeError)', async (t) => {
  const logs = logCapture()
  const app = await setup(t, {
    routes: [{
      path: '/d',
      messages: {},
      canJoin (_conn, room) {
        if (room === 'throws') throw new Error('canJoin bug')
        if (room === 'rejects') return Promise.reject(new Error('canJoin async bug'))
        if (room === 'deliberate') return Promise.reject(new RealtimeError('invite only', { code: 'INVITE_ONLY' }))
        return true
      }
    }]
  }, { logger: { level: 'info', stream: logs.stream } })
  const a = await inject(app, '/d', sign(app, 'alice'))
  t.same(await a.request({ type: 'join', room: 'throws', id: 1 }), { type: 'error', id: 1, code: 'HANDLER_ERROR', message: 'The handler failed' })
  t.same(await a.request({ type: 'join', room: 'rejects', id: 2 }), { type: 'error', id: 2, code: 'HANDLER_ERROR', message: 'The handler failed' })
  t.same(await a.request({ type: 'join', room: 'deliberate', id: 3 }), { type: 'error', id: 3, code: 'INVITE_ONLY', message: 'invite only' })
  t.same(app.realtime.rooms(), [])
  t.same(logs.lines.filter((l) => l.level === 50).map((l) => l.err.message), ['canJoin bug', 'canJoin async bug'])
  a.ws.terminate()
})

t.test('NOT_IN_ROOM: leaving or messaging a room not joined', async (t) => {
  let said = 0
  const app = await setup(t, {
    routes: [{ path: '/d', messages: { say: { schema: textSchema, handler: () => { said++; return 'said' } } } }]
  })
  const a = await inject(app, '/d', sign(app, 'alice'))
  const notIn = { type: 'error', code: 'NOT_IN_ROOM', message: 'Not a member of this room' }
  t.same(await a.request({ type: 'leave', room: 'r', id: 1 }), { ...notIn, id: 1 })
  t.same(await a.request({ type: 'say', room: 'r', id: 2, data: { text: 'x' } }), { ...notIn, id: 2 })
  t.same(await a.request({ type: 'say', room: 'r', id: 3, data: { text: '' } }), { ...notIn, id: 3 }, 'membership is checked before the schema')
  t.equal(said, 0)
  await a.request({ type: 'join', room: 'r', id: 4 })
  t.same(await a.request({ type: 'say', room: 'r', id: 5, data: { text: 'x' } }), { type: 'ack', id: 5, data: 'said' })
  t.same(await a.request({ type: 'say', id: 6, data: { text: 'no room named' } }), { type: 'ack', id: 6, data: 'said' }, 'a message naming no room needs no membership')
  await a.request({ type: 'leave', room: 'r', id: 7 })
  t.same(await a.request({ type: 'say', room: 'r', id: 8, data: { text: 'x' } }), { ...notIn, id: 8 }, 'after leaving, not a member')
  t.same(await a.request({ type: 'leave', room: 'r', id: 9 }), { ...notIn, id: 9 }, 'leaving twice')
  a.ws.terminate()
})

t.test('TOO_MANY_ROOMS past maxRoomsPerConnection', async (t) => {
  const app = await setup(t, { maxRoomsPerConnection: 2, routes: [{ path: '/d', messages: {} }] })
  const a = await inject(app, '/d', sign(app, 'alice'))
  await a.request({ type: 'join', room: 'a', id: 1 })
  await a.request({ type: 'join', room: 'b', id: 2 })
  t.same(await a.request({ type: 'join', room: 'c', id: 3 }), { type: 'error', id: 3, code: 'TOO_MANY_ROOMS', message: 'Too many rooms for this connection' })
  t.same(await a.request({ type: 'join', room: 'a', id: 4 }), { type: 'ack', id: 4, data: { room: 'a' } }, 're-joining a room it is in is fine')
  await a.request({ type: 'leave', room: 'a', id: 5 })
  t.same(await a.request({ type: 'join', room: 'c', id: 6 }), { type: 'ack', id: 6, data: { room: 'c' } }, 'a leave frees a slot')
  t.same([...app.realtime.connections()[0].rooms].sort(), ['b', 'c'])
  // another connection has its own budget
  const b = await inject(app, '/d', sign(app, 'bob'))
  t.same(await b.request({ type: 'join', room: 'x', id: 1 }), { type: 'ack', id: 1, data: { room: 'x' } })
  a.ws.terminate()
  b.ws.terminate()
})

t.test('TOO_MANY_ROOMS is re-checked after an async canJoin', async (t) => {
  let release: (ok: boolean) => void = () => {}
  const app = await setup(t, {
    maxRoomsPerConnection: 1,
    routes: [{ path: '/d', messages: {}, canJoin: async () => await new Promise<boolean>((resolve) => { release = resolve }) }]
  })
  const a = await inject(app, '/d', sign(app, 'alice'))
  a.send({ type: 'join', room: 'wanted', id: 1 })
  await sleep(20)
  // meanwhile, server code fills the only slot
  await app.realtime.connections()[0].join('assigned')
  release(true)
  t.same(await a.next((m) => m.id === 1), { type: 'error', id: 1, code: 'TOO_MANY_ROOMS', message: 'Too many rooms for this connection' })
  t.same([...app.realtime.connections()[0].rooms], ['assigned'])
  a.ws.terminate()
})

t.test('a connection that closes while canJoin is pending joins nothing', async (t) => {
  let release: (ok: boolean) => void = () => {}
  const app = await setup(t, {
    routes: [{ path: '/d', messages: {}, canJoin: async () => await new Promise<boolean>((resolve) => { release = resolve }) }]
  })
  const a = await inject(app, '/d', sign(app, 'alice'))
  const conn = app.realtime.connections()[0]
  a.send({ type: 'join', room: 'wanted', id: 1 })
  await sleep(20)
  a.ws.terminate()
  for (let i = 0; i < 50 && app.realtime.connections().length > 0; i++) await sleep(5)
  release(true)
  await sleep(10)
  t.same(app.realtime.rooms(), [], 'no room holds a closed connection')
  t.same([...conn.rooms], [])
})

t.test('messages of one connection are handled in order, even when async', async (t) => {
  const order: string[] = []
  const app = await setup(t, {
    routes: [{
      path: '/d',
      canJoin: async (_conn, room) => { await sleep(30); return room !== 'closed' },
      messages: {
        say: { schema: textSchema, handler: (_conn, data) => { order.push(data.text); return data.text } },
        slow: { schema: Type.Object({ ms: Type.Number() }), handler: async (_conn, data) => { await sleep(data.ms); order.push(`slow ${data.ms}`); return data.ms } }
      }
    }]
  })
  const a = await inject(app, '/d', sign(app, 'alice'))
  // a join held by an async canJoin, then at once a message to that room: it must see the membership
  a.send({ type: 'join', room: 'r', id: 'j' })
  a.send({ type: 'say', room: 'r', id: 's', data: { text: 'right after join' } })
  t.same(await a.next((m) => m.id === 's'), { type: 'ack', id: 's', data: 'right after join' })
  t.same(a.messages.map((m) => m.id), ['j', 's'], 'join ack first, then the message ack')

  a.send({ type: 'slow', id: 1, data: { ms: 30 } })
  a.send({ type: 'say', id: 2, room: 'r', data: { text: 'fast' } })
  a.send({ type: 'slow', id: 3, data: { ms: 1 } })
  a.send({ type: 'leave', room: 'r', id: 4 })
  a.send({ type: 'say', id: 5, room: 'r', data: { text: 'after leave' } })
  a.send({ type: 'join', room: 'closed', id: 6 })
  await a.next((m) => m.id === 6)
  t.same(a.messages.slice(2).map((m) => [m.id, m.type, m.code]), [
    [1, 'ack', undefined], [2, 'ack', undefined], [3, 'ack', undefined], [4, 'ack', undefined], [5, 'error', 'NOT_IN_ROOM'], [6, 'error', 'FORBIDDEN']
  ])
  t.same(order, ['right after join', 'slow 30', 'fast', 'slow 1'])
  a.ws.terminate()
})

t.test('dispatch never throws: a failure outside handlers is HANDLER_ERROR', async (t) => {
  const logs = logCapture()
  const app = await setup(t, { routes: [{ path: '/d', messages: {} }] }, { logger: { level: 'info', stream: logs.stream } })
  const a = await inject(app, '/d', sign(app, 'alice'))
  const server = hub(app) as any
  const joinRoom = server.joinRoom
  server.joinRoom = () => { throw new Error('registry bug') }
  t.teardown(() => { server.joinRoom = joinRoom })
  t.same(await a.request({ type: 'join', room: 'r', id: 1 }), { type: 'error', id: 1, code: 'HANDLER_ERROR', message: 'The handler failed' })
  server.joinRoom = joinRoom
  t.same(await a.request({ type: 'join', room: 'r', id: 2 }), { type: 'ack', id: 2, data: { room: 'r' } }, 'the connection goes on')
  t.match(logs.lines.find((l) => l.level === 50), { err: { message: 'registry bug' } })
  a.ws.terminate()
})

t.test('auth: a fresh token for the same sub is acked and replaces conn.user', async (t) => {
  const app = await setup(t, { routes: [{ path: '/d', messages: { who: { schema: Type.Any(), handler: (conn) => conn.user.level } } }] })
  const a = await inject(app, '/d', sign(app, 'alice', { level: 1 }))
  t.same(await a.request({ type: 'who', id: 1 }), { type: 'ack', id: 1, data: 1 })
  t.same(await a.request({ type: 'auth', id: 2, data: { token: sign(app, 'alice', { level: 2 }) } }), { type: 'ack', id: 2 })
  t.same(await a.request({ type: 'who', id: 3 }), { type: 'ack', id: 3, data: 2 }, 'handlers see the new claims')
  a.send({ type: 'auth', data: { token: sign(app, 'alice', { level: 3 }) } })
  t.same(await settle(a), [], 'no ack without id')
  t.same(await a.request({ type: 'who', id: 4 }), { type: 'ack', id: 4, data: 3 })
  a.ws.terminate()
})

t.test('auth: a bad, missing or foreign token closes with 4401', async (t) => {
  const app = await setup(t, { auth: { required: false }, routes: [{ path: '/d', messages: {} }] })
  const cases: Array<[string, string | undefined, unknown]> = [
    ['garbage token', 'alice', { token: 'not.a.jwt' }],
    ['no data', 'alice', undefined],
    ['empty token', 'alice', { token: '' }],
    ['token not a string', 'alice', { token: 42 }],
    ['another user', 'alice', 'bob'],
    ['anonymous becoming somebody', undefined, 'alice']
  ]
  for (const [name, sub, data] of cases) {
    const a = await inject(app, '/d', sub === undefined ? undefined : sign(app, sub))
    const done = closed(a.ws)
    a.send({ type: 'auth', id: 1, data: typeof data === 'string' ? { token: sign(app, data) } : data })
    t.same(await done, { code: 4401, reason: 'invalid token' }, name)
    t.notOk(a.messages.some((m) => m.type === 'ack'), `${name}: no ack`)
  }
  const anon = await inject(app, '/d')
  t.same(await anon.request({ type: 'auth', id: 1, data: { token: (app as any).jwt.sign({ scope: 'guest' }) } }), { type: 'ack', id: 1 }, 'an anonymous connection may present a token without sub')
  anon.ws.terminate()
})

t.test('auth: a connection closed while its token is verified is left alone', async (t) => {
  let slow = false
  const app = await setup(t, { auth: { required: false }, routes: [{ path: '/d', messages: {} }] })
  const jwt = (app as any).jwt
  const anon = await inject(app, '/d')
  const conn = app.realtime.connections()[0]
  const request = conn.request as any
  const jwtVerify = request.jwtVerify.bind(request)
  // hold verification of the refresh until the socket is gone
  // (@fastify/jwt's promise form calls request.jwtVerify again with a callback: delay once)
  request.jwtVerify = async (...args: unknown[]) => {
    if (slow) {
      slow = false
      await sleep(40)
    }
    return await jwtVerify(...args)
  }
  slow = true
  anon.send({ type: 'auth', id: 1, data: { token: jwt.sign({ scope: 'guest' }) } })
  await sleep(5)
  anon.ws.terminate()
  await sleep(60)
  t.equal(conn.user, null, 'the user was not replaced after close')
  t.notOk(anon.messages.some((m) => m.type === 'ack'))
})
