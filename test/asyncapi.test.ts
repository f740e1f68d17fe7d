// app.realtime.asyncapi() and the `asyncapi` option (lib/asyncapi.ts): an
// AsyncAPI 3.0.0 document of a route set with every kind of message, checked
// by @asyncapi/parser and by what it must say.
import t from 'tap'
import { Parser } from '@asyncapi/parser'
import { Type } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import { CloseCode, ErrorCode, defineRoute } from '../lib/index.js'
import { setup } from './protocol-helpers.js'

const chat = defineRoute({
  path: '/chat',
  presence: true,
  emits: {
    'chat.message': Type.Object({ from: Type.String(), text: Type.String() }),
    'user/notice': T1.Object({ unread: T1.Integer({ minimum: 0 }) })
  },
  messages: {
    'chat.send': {
      schema: Type.Object({ text: Type.String({ minLength: 1 }) }),
      ack: Type.Object({ ok: Type.Boolean() }),
      handler: () => ({ ok: true })
    },
    'chat.typing': { schema: Type.Unknown(), handler: () => undefined },
    'v1.add': {
      schema: T1.Object({ a: T1.Number(), b: T1.Optional(T1.Number()) }),
      ack: T1.Number(),
      handler: (_conn, data) => data.a + (data.b ?? 0)
    }
  }
})
const feed = defineRoute({ path: '/feed', emits: { 'chat.message': Type.Object({ from: Type.String(), text: Type.String() }) } })

/** Every key of every object in `value`, recursively. */
function keys (value: unknown, out = new Set<string>()): Set<string> {
  if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) {
      out.add(key)
      keys(inner, out)
    }
  }
  return out
}

async function parse (doc: unknown): Promise<{ errors: unknown[], document: any }> {
  const parser = new Parser()
  const { document, diagnostics } = await parser.parse(doc as any)
  // spectral severities: 0 error, 1 warning, 2 information, 3 hint
  return { errors: diagnostics.filter((d) => d.severity === 0), document }
}

t.test('the document of a route set with every kind of message passes @asyncapi/parser', async (t) => {
  const app = await setup(t, { routes: [chat, feed] })
  const doc = app.realtime.asyncapi() as any
  const diagnostics = await new Parser().validate(doc)
  t.same(diagnostics.filter((d) => d.severity === 0), [], 'no error-level diagnostic')
  const { document } = await parse(doc)
  t.ok(document, 'the parser builds a document')
  t.equal(doc.asyncapi, '3.0.0')
  t.same(Object.keys(doc.channels), ['chat', 'feed'], 'one channel per route')
  t.equal(doc.channels.chat.address, '/chat')
  t.equal(document.channels().get('chat').address(), '/chat')
  t.ok(JSON.stringify(doc).length < 64 * 1024, `a compact document (${JSON.stringify(doc).length} bytes)`)
  t.notOk([...keys(doc)].some((key) => key.startsWith('~')), "no TypeBox 1.x '~' keys")
  t.same(JSON.parse(JSON.stringify(doc)), doc, 'plain JSON: no symbols, functions or undefined')
})

t.test('client-to-server messages are receive operations with their ack as reply; server-to-client are send', async (t) => {
  const app = await setup(t, { routes: [chat, feed] })
  const doc = app.realtime.asyncapi() as any
  const { document } = await parse(doc)
  const ops = document.operations()
  const receive = ops.filterByReceive().filter((op: any) => op.channels().all()[0].id() === 'chat')
  const send = ops.filterBySend().filter((op: any) => op.channels().all()[0].id() === 'chat')
  const names = (list: any[]): string[] => list.flatMap((op) => op.messages().all().map((m: any) => m.name())).sort()
  t.same(names(receive), ['auth', 'chat.send', 'chat.typing', 'join', 'leave', 'ping', 'v1.add'], 'everything a client sends')
  t.same(names(send), ['ack', 'ack', 'ack', 'ack', 'ack', 'ack', 'chat.message', 'error', 'kicked', 'pong', 'presence', 'resync', 'user/notice'].sort(), 'everything the server sends')
  const feedSend = ops.filterBySend().filter((op: any) => op.channels().all()[0].id() === 'feed')
  t.notOk(names(feedSend).includes('presence'), 'no presence on a route without it')

  // payloads: the envelope, with the declared schema as data
  const chatSend = doc.channels.chat.messages['chat.send'].payload
  t.same(chatSend.properties.type, { type: 'string', const: 'chat.send' })
  t.same(chatSend.properties.data, { type: 'object', required: ['text'], properties: { text: { minLength: 1, type: 'string' } } })
  t.same(chatSend.required, ['type', 'data'], 'data required: its schema does not take undefined')
  t.same(doc.channels.chat.messages['chat.typing'].payload.required, ['type'], 'data optional for Type.Unknown()')
  t.same(doc.channels.chat.messages['v1.add'].payload.properties.data, { type: 'object', required: ['a'], properties: { a: { type: 'number' }, b: { type: 'number' } } }, 'a TypeBox 1.x schema as plain JSON Schema')
  t.same(doc.channels.chat.messages.user_notice.payload.properties.data, { type: 'object', required: ['unread'], properties: { unread: { type: 'integer', minimum: 0 } } }, 'the key is made safe, the name stays: user/notice')

  // each message's ack schema is its reply
  const op = doc.operations['chat.receive.chat.send']
  t.equal(op.action, 'receive')
  t.same(op.reply.messages.map((m: any) => m.$ref), ['#/channels/chat/messages/ack.chat.send', '#/channels/chat/messages/error'])
  t.same(doc.channels.chat.messages['ack.chat.send'].payload.properties.data, { type: 'object', required: ['ok'], properties: { ok: { type: 'boolean' } } })
  t.same(doc.channels.chat.messages['ack.v1.add'].payload.properties.data, { type: 'number' })
  t.same(doc.channels.chat.messages['ack.chat.typing'].payload.required, ['type', 'id'], 'no ack schema: any data')
  const joinReply = document.operations().get('chat.receive.join').reply().messages().all().map((m: any) => m.title())
  t.same(joinReply, ['ack (join)', 'error'])
  t.same(doc.operations['chat.receive.ping'].reply.messages, [{ $ref: '#/channels/chat/messages/pong' }])
  t.equal(doc.operations['chat.send.chat.message'].action, 'send')
})

t.test('the protocol: join data, presence, kicked, resync, error codes, close codes, JWT in three places', async (t) => {
  const app = await setup(t, { routes: [chat] })
  const doc = app.realtime.asyncapi() as any
  const messages = doc.components.messages
  t.same(messages.join.payload.required, ['type', 'room'])
  t.same(messages.join.payload.properties.data.oneOf.map((s: any) => s.required), [['since'], ['history']], 'join data: since or history')
  t.same(Object.keys(messages['ack.join'].payload.properties.data.properties), ['room', 'members', 'total', 'offset', 'epoch', 'recovered'])
  t.same(messages.presence.payload.properties.data.properties.event, { type: 'string', enum: ['join', 'leave'] })
  t.same(messages.kicked.payload.properties.data.properties.code.enum, ['FORBIDDEN', 'LEFT'])
  t.same(messages.resync.payload.properties.data.required, ['epoch', 'offset'])
  t.same(messages.auth.payload.properties.data.required, ['token'])
  t.same(messages.error.payload.properties.code.anyOf[0].enum, Object.values(ErrorCode), 'every wire error code')
  t.same(Object.keys(messages.error['x-error-codes']).sort(), Object.values(ErrorCode).sort())
  for (const code of Object.values(ErrorCode)) t.match(messages.error.description, `| ${code} |`)
  t.same(Object.keys(doc.channels.chat['x-close-codes']).sort(), Object.values(CloseCode).map(String).sort(), 'every close code')
  for (const code of Object.values(CloseCode)) t.match(doc.info.description, `| ${code} |`, `close code ${code} in the document's description`)

  t.same(doc.components.securitySchemes.jwtHeader, { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: doc.components.securitySchemes.jwtHeader.description })
  t.match(doc.components.securitySchemes.jwtSubprotocol, { type: 'httpApiKey', in: 'header', name: 'Sec-WebSocket-Protocol' })
  t.match(doc.components.securitySchemes.jwtQuery, { type: 'httpApiKey', in: 'query', name: 'token' })
  t.same(doc.operations['chat.receive.join'].security.map((s: any) => s.$ref), [
    '#/components/securitySchemes/jwtHeader', '#/components/securitySchemes/jwtSubprotocol', '#/components/securitySchemes/jwtQuery'
  ], 'each operation names the three ways, any of which will do')
  t.match(doc.channels.chat.bindings.ws, { method: 'GET', query: { properties: { token: {} } }, headers: { properties: { Authorization: {}, 'Sec-WebSocket-Protocol': {} } } })
})

t.test('auth optional: no security requirement; info from the option; every call a fresh copy', async (t) => {
  const app = await setup(t, { routes: [chat], auth: { required: false }, asyncapi: { path: '/asyncapi.json', info: { title: 'Chat', version: '2.0.0' } } })
  const doc = app.realtime.asyncapi() as any
  t.equal(doc.operations['chat.receive.join'].security, undefined)
  t.ok(doc.components.securitySchemes.jwtQuery, 'the schemes are still described')
  t.match(doc.info, { title: 'Chat', version: '2.0.0' })
  t.match(doc.info.description, /^Real-time rooms over WebSocket/, 'without a description of its own: the protocol notes')
  const described = await setup(t, { routes: [chat], asyncapi: { path: '/a.json', info: { description: 'Our chat.' } } })
  t.match((described.realtime.asyncapi() as any).info.description, /^Our chat\.\n\nReal-time rooms over WebSocket[^]*\| 4429 \|/, 'the app\'s description first, then the protocol notes')
  doc.components.schemas.room.maxLength = 1
  t.equal((app.realtime.asyncapi() as any).components.schemas.room.maxLength, 128)
})

t.test('asyncapi.path serves the document as JSON; routes added later are in it', async (t) => {
  const { build } = await import('./helpers.js')
  const app = await build(t, { heartbeat: false, routes: [chat], asyncapi: { path: '/docs/asyncapi.json' } })
  app.realtime.route({ path: '/late', messages: { hello: { schema: Type.String(), handler: () => 'hi' } } })
  await app.ready()
  const res = await app.inject('/docs/asyncapi.json')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /application\/json/)
  t.same(res.json(), app.realtime.asyncapi())
  t.same(Object.keys(res.json().channels), ['chat', 'late'])
  t.same((await new Parser().validate(res.body)).filter((d) => d.severity === 0), [])

  const none = await build(t, { heartbeat: false, routes: [chat] })
  t.equal((await none.inject('/asyncapi.json')).statusCode, 404, 'not served without the option')
})

t.test('awkward names: channel and message keys are made safe and unique', async (t) => {
  const app = await setup(t, {
    routes: [
      { path: '/', messages: { 'a b': { schema: Type.String(), handler: () => 1 } } },
      { path: '/a/b', emits: { 'x~y': Type.Number() } },
      { path: '/a_b', emits: { 'ack.q': Type.Number() }, messages: { q: { schema: Type.Number(), handler: () => 1 } } }
    ]
  })
  const doc = app.realtime.asyncapi() as any
  t.same(Object.keys(doc.channels), ['root', 'a_b', 'a_b_2'])
  t.same(doc.channels.a_b.address, '/a/b')
  t.ok(doc.channels.root.messages['a_b'], 'a space made safe')
  t.ok(doc.channels.a_b_2.messages['ack.q'] && doc.channels.a_b_2.messages['ack.q_2'], 'an emitted type named like an ack keeps both')
  t.same((await new Parser().validate(doc)).filter((d) => d.severity === 0), [])
})
