// What the server sends, checked against what routes declare (lib/outgoing.ts):
// `emits` and `ack`, validateOutgoing on and off, app-wide emitted types.
import t from 'tap'
import { Type } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import { defineRoute } from '../lib/index.js'
import { connect } from '../lib/testing/index.js'
import { build, hub, sleep } from './helpers.js'
import { logCapture, setup } from './protocol-helpers.js'

// the same contract built with TypeBox 0.34 and with TypeBox 1.x
const builders = {
  'TypeBox 0.34': Type,
  'TypeBox 1.x': T1
} as const

function chatRoute (T: typeof Type | typeof T1, path = '/chat') {
  const Message = (T as typeof Type).Object({ from: (T as typeof Type).String(), text: (T as typeof Type).String({ minLength: 1 }) })
  return defineRoute({
    path,
    emits: { 'chat.message': Message, 'chat.count': (T as typeof Type).Integer({ minimum: 0 }) },
    messages: {
      'chat.send': {
        schema: (T as typeof Type).Object({ text: (T as typeof Type).String() }),
        ack: (T as typeof Type).Object({ ok: (T as typeof Type).Boolean() }),
        handler (conn, data, msg): any {
          // data.text may be '' here: the emitted message declares minLength 1
          conn.broadcast(msg.room ?? 'lobby', 'chat.message', { from: conn.sub ?? 'anonymous', text: data.text })
          return data.text === 'bad ack' ? { ok: 'yes' } : { ok: true }
        }
      },
      'chat.echo': {
        schema: (T as typeof Type).Unknown(),
        handler: (conn, data): any => { conn.send('chat.message', data as any); return 'sent' }
      }
    }
  })
}

for (const [name, T] of Object.entries(builders)) {
  t.test(`${name}: a declared type with data that does not match throws at the call, and nothing is sent`, async (t) => {
    const app = await setup(t, { routes: [chatRoute(T)], validateOutgoing: true })
    const alice = await connect(app, '/chat', { user: { sub: 'alice' } })
    t.after(() => alice.close())
    await alice.join('lobby')
    const conn = app.realtime.connections()[0]

    const calls: Array<[string, () => unknown]> = [
      ['app.realtime.broadcast', () => app.realtime.broadcast('lobby', 'chat.message', { from: 'server', text: 1 } as any)],
      ['app.realtime.send', () => app.realtime.send(conn.id, 'chat.message', { from: 'server' } as any)],
      ['app.realtime.send to a connection not here', () => app.realtime.send('nobody', 'chat.message', { text: 'x' } as any)],
      ['app.realtime.sendToUser', () => app.realtime.sendToUser('alice', 'chat.count', -1)],
      ['conn.send', () => conn.send('chat.message', { from: 'x', text: '' })],
      ['conn.broadcast', () => conn.broadcast('lobby', 'chat.count', 1.5)]
    ]
    for (const [call, run] of calls) {
      const err = (() => { try { run() } catch (err) { return err as any } })()
      t.equal(err?.code, 'FST_REALTIME_INVALID_OUTGOING', `${call} throws`)
      t.ok(err instanceof TypeError, `${call}: a TypeError`)
      t.match(err?.message, /message type "chat\.(message|count)" does not match its declared schema: \/\S*/, `${call}: the type and the failing paths`)
    }
    t.match(calls.map(([, run]) => { try { run() } catch (err) { return (err as Error).message } return '' }), [
      /"chat\.message".*\/text/,
      /"chat\.message".*\/text/,
      /"chat\.message".*\/from/,
      /"chat\.count".*: \//,
      /"chat\.message".*\/text/,
      /"chat\.count".*: \//
    ], 'each message names where the data is wrong')
    // nothing of the above reached the client; a good message goes through
    app.realtime.broadcast('lobby', 'chat.message', { from: 'server', text: 'fine' })
    t.same((await alice.next()).data, { from: 'server', text: 'fine' }, 'the first thing the client gets is the good one')
    app.realtime.sendToUser('alice', 'chat.count', 3)
    t.same((await alice.next()).data, 3)
    // undeclared types are not checked
    app.realtime.broadcast('lobby', 'anything', { at: 'all' })
    t.same((await alice.next('anything')).data, { at: 'all' })
  })

  t.test(`${name}: a handler that emits bad data, or returns a bad ack, gets HANDLER_ERROR with the message id; the error is logged`, async (t) => {
    const logs = logCapture()
    const app = await setup(t, { routes: [chatRoute(T)], validateOutgoing: true }, { logger: { level: 'error', stream: logs.stream } })
    const alice = await connect<ReturnType<typeof chatRoute>>(app, '/chat', { user: { sub: 'alice' } })
    t.after(() => alice.close())
    await alice.join('lobby')
    t.same(await alice.request('chat.send', { text: 'hi' }, { room: 'lobby' }), { ok: true })
    t.same((await alice.next('chat.message')).data, { from: 'alice', text: 'hi' })

    await t.rejects(alice.request('chat.send', { text: 'bad ack' }, { room: 'lobby' }), { code: 'HANDLER_ERROR', message: 'The handler failed' })
    await alice.next('chat.message')
    const ackLog = logs.lines.find((l) => l.err?.code === 'FST_REALTIME_INVALID_OUTGOING')
    t.match(ackLog?.err.message, /the ack of message "chat\.send" does not match its declared schema: \/ok/)

    // the broadcast inside the handler throws: the handler failed, nothing was broadcast
    await t.rejects(alice.request('chat.send', { text: '' }, { room: 'lobby' }), { code: 'HANDLER_ERROR' })
    await t.rejects(alice.request('chat.echo', { from: 'x' }), { code: 'HANDLER_ERROR' })
    t.equal(logs.lines.filter((l) => l.err?.code === 'FST_REALTIME_INVALID_OUTGOING').length, 3)
    t.same(alice.unread, [], 'no chat.message went out')
    // a message without an id gets no ack, so its result is not checked
    alice.send('chat.send', { text: 'bad ack' }, 'lobby')
    t.same((await alice.next('chat.message')).data?.text, 'bad ack')
  })

  t.test(`${name}: validateOutgoing off (NODE_ENV=production when register runs): nothing is checked`, async (t) => {
    const before = process.env.NODE_ENV
    t.teardown(() => {
      if (before === undefined) delete process.env.NODE_ENV
      else process.env.NODE_ENV = before
    })
    process.env.NODE_ENV = 'production'
    const app = await build(t, { routes: [chatRoute(T)], heartbeat: false })
    process.env.NODE_ENV = before
    await app.ready()
    t.equal(hub(app).outgoing.validate, false)
    const alice = await connect(app, '/chat', { user: { sub: 'alice' } })
    t.after(() => alice.close())
    await alice.join('lobby')
    app.realtime.broadcast('lobby', 'chat.message', { wrong: true } as any)
    t.same((await alice.next('chat.message')).data, { wrong: true }, 'sent as it is')
    t.equal(await alice.request('chat.send', { text: 'bad ack' }, { room: 'lobby' }).then((ack: any) => ack.ok), 'yes', 'the bad ack too')
  })
}

t.test('checked once per broadcast, not per recipient', async (t) => {
  const app = await setup(t, { routes: [chatRoute(Type)] })
  const members = await Promise.all(Array.from({ length: 20 }, async (_, i) => await connect(app, '/chat', { user: { sub: `u${i}` } })))
  t.after(() => Promise.all(members.map(async (m) => await m.close())))
  for (const m of members) await m.join('lobby')
  let checks = 0
  const declared = hub(app).outgoing as any
  const original = declared.check.bind(declared)
  declared.check = (type: string, data: unknown) => { checks++; original(type, data) }
  app.realtime.broadcast('lobby', 'chat.message', { from: 'server', text: 'hello all' })
  for (const m of members) t.equal((await m.next('chat.message')).data.text, 'hello all')
  t.equal(checks, 1, 'one check for 20 recipients')
})

t.test('emitted type names are app-wide: another schema for a declared type fails register', async (t) => {
  const Message = Type.Object({ from: Type.String(), text: Type.String({ minLength: 1 }) })
  await t.rejects(build(t, { routes: [chatRoute(Type), { path: '/other', emits: { 'chat.message': Type.Object({ body: Type.String() }) } }] }), {
    code: 'FST_REALTIME_INVALID_ROUTE',
    message: /route "\/other": emitted type "chat\.message" is declared by route "\/chat" with another schema/
  })
  // the same schema again is fine, built anew or with the other TypeBox
  const app = await build(t, { heartbeat: false, routes: [chatRoute(Type), chatRoute(T1, '/v1'), { path: '/feed', emits: { 'chat.message': Message } }] })
  t.throws(() => app.realtime.route({ path: '/late', emits: { 'chat.count': Type.String() } }), { code: 'FST_REALTIME_INVALID_ROUTE', message: /"chat\.count"/ })
  await app.ready()
  // the route that failed declared nothing: chat.count is still the integer of /chat
  t.throws(() => app.realtime.broadcast('r', 'chat.count', 'a string' as any), { code: 'FST_REALTIME_INVALID_OUTGOING', message: /Expected integer/ })
  t.doesNotThrow(() => app.realtime.broadcast('r', 'chat.count', 2))
})

t.test('bad emits and acks fail the route', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ path: '/x', emits: [] }, /emits must be an object/],
    [{ path: '/x', emits: 'chat' }, /emits must be an object/],
    [{ path: '/x', emits: { presence: Type.Object({}) } }, /emitted type "presence" is reserved/],
    [{ path: '/x', emits: { ack: Type.Object({}) } }, /emitted type "ack" is reserved/],
    [{ path: '/x', emits: { '': Type.Object({}) } }, /emitted type "" must be 1 to 128 characters/],
    [{ path: '/x', emits: { t: 5 } }, /emitted type "t" needs a TypeBox schema/],
    [{ path: '/x', emits: { t: { type: 'string' } } }, /emitted type "t": its schema is not one TypeBox can compile/],
    [{ path: '/x', messages: { m: { schema: Type.String(), ack: 'ok', handler: () => 1 } } }, /the ack of message "m" needs a TypeBox schema/],
    [{ path: '/x', messages: { m: { schema: Type.String(), ack: { type: 'object' }, handler: () => 1 } } }, /the ack of message "m": its schema is not one TypeBox can compile/]
  ]
  for (const [route, message] of cases) {
    await t.rejects(build(t, { routes: [route as any] }), { code: 'FST_REALTIME_INVALID_ROUTE', message }, String(message))
  }
})

t.test('an ack schema that takes undefined lets a handler return nothing; async handlers are checked too', async (t) => {
  const app = await setup(t, {
    routes: [{
      path: '/a',
      messages: {
        nothing: { schema: Type.Null(), ack: Type.Optional(Type.Undefined()), handler: () => undefined },
        later: {
          schema: Type.Number(),
          ack: Type.Integer(),
          handler: async (_conn: unknown, n: number) => { await sleep(1); return n / 2 }
        }
      }
    }]
  })
  const c = await connect(app, '/a', { user: { sub: 'a' } })
  t.after(() => c.close())
  t.equal(await c.request('nothing', null), undefined)
  t.equal(await c.request('later', 4), 2)
  await t.rejects(c.request('later', 3), { code: 'HANDLER_ERROR' })
})
