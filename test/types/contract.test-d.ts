// Type tests of the contract (outgoing schemas, acks, app-wide emits, TypeBox 1.x):
// checked by `npm run typecheck` (tsc), never run. Each @ts-expect-error line
// must stay an error; a type that loosened would fail the check.
import Fastify from 'fastify'
import { Type } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import realtime, { defineRoute, type Connection, type EmitsOf, type AsyncApiDocument } from '../../lib/index.js'

/** Marks values as used. */
function use (..._values: unknown[]): void {}

export const chat = defineRoute({
  path: '/chat',
  emits: {
    'typed.message': Type.Object({ from: Type.String(), text: Type.String() }),
    'typed.typing': Type.Object({ from: Type.String() })
  },
  messages: {
    'chat.send': {
      schema: Type.Object({ text: Type.String() }),
      ack: Type.Object({ ok: Type.Boolean(), id: Type.Number() }),
      handler (conn, data, msg) {
        conn.broadcast(msg.room ?? 'lobby', 'typed.message', { from: conn.sub ?? 'anonymous', text: data.text })
        conn.broadcast('lobby', 'typed.message', { from: 'a', text: 'b' }, { except: conn.id })
        // @ts-expect-error a declared type's data is checked: text is a string
        conn.broadcast('lobby', 'typed.message', { from: 'a', text: 1 })
        // @ts-expect-error a declared type needs its data
        conn.broadcast('lobby', 'typed.typing')
        conn.send('typed.typing', { from: 'x' })
        conn.send('typed.typing', { from: 'x' }, 'lobby')
        // @ts-expect-error from is required
        conn.send('typed.typing', {})
        // undeclared types stay allowed and untyped
        conn.send('anything.else', { whatever: 1 })
        conn.send('anything.else')
        conn.broadcast('lobby', 'other', 42, { except: [conn.id] })
        return { ok: true, id: 1 }
      }
    },
    'chat.edit': {
      schema: Type.Object({ id: Type.Number(), text: Type.String() }),
      ack: Type.Object({ ok: Type.Boolean() }),
      // @ts-expect-error the handler's result must match its ack schema
      handler () {
        return { ok: 'yes' }
      }
    },
    'chat.async': {
      schema: Type.Number(),
      ack: Type.Number(),
      // @ts-expect-error an async handler resolves to its ack schema too
      async handler (_conn, data) {
        return String(data)
      }
    },
    'chat.fine-async': {
      schema: Type.Number(),
      ack: Type.Number(),
      async handler (_conn, data) {
        const doubled: number = data * 2
        return doubled
      }
    },
    'chat.no-ack': {
      schema: Type.String(),
      handler (_conn, data) {
        // without an ack schema, anything goes
        return { length: data.length, any: [data] }
      }
    }
  },
  onConnect (conn) {
    conn.send('typed.typing', { from: 'server' })
    // @ts-expect-error onConnect's conn knows the route's emits too
    conn.send('typed.typing', { from: 1 })
  }
})

// TypeBox 1.x schemas type data, acks and emits the same way
export const v1 = defineRoute({
  path: '/v1',
  emits: { 'typed.tick': T1.Object({ n: T1.Integer() }) },
  messages: {
    'v1.add': {
      schema: T1.Object({ a: T1.Number(), b: T1.Number() }),
      ack: T1.Object({ sum: T1.Number() }),
      handler (conn, data) {
        const a: number = data.a
        // @ts-expect-error no such field in a 1.x schema either
        use(data.c)
        conn.send('typed.tick', { n: 1 })
        // @ts-expect-error n is an integer (a number)
        conn.send('typed.tick', { n: 'one' })
        return { sum: a + data.b }
      }
    },
    'v1.bad-ack': {
      schema: T1.String(),
      ack: T1.Object({ sum: T1.Number() }),
      // @ts-expect-error the ack of a 1.x schema is checked
      handler () { return { sum: 'x' } }
    }
  }
})

// App-wide: RealtimeEmits, augmented from route definitions, types app.realtime
declare module '../../lib/index.js' {
  interface RealtimeEmits extends EmitsOf<typeof chat>, EmitsOf<typeof v1> {
    'typed.news': { title: string }
  }
}

const app = Fastify()
await app.register(realtime, { routes: [chat, v1], validateOutgoing: true, asyncapi: { path: '/asyncapi.json' } })
app.realtime.broadcast('public:news', 'typed.news', { title: 'hello' })
app.realtime.broadcast('public:news', 'typed.news', { title: 'hello' }, { except: 'id' })
// @ts-expect-error title is a string
app.realtime.broadcast('public:news', 'typed.news', { title: 1 })
// @ts-expect-error a declared type needs its data
app.realtime.broadcast('public:news', 'typed.news')
app.realtime.broadcast('lobby', 'typed.message', { from: 'server', text: 'hi' })
// @ts-expect-error the data of typed.message comes from the chat route's emits
app.realtime.broadcast('lobby', 'typed.message', { from: 'server' })
const sent: boolean = app.realtime.send('conn-id', 'typed.tick', { n: 2 })
// @ts-expect-error typed.tick's n is a number
app.realtime.send('conn-id', 'typed.tick', { n: '2' })
app.realtime.sendToUser('alice', 'typed.typing', { from: 'bob' })
// @ts-expect-error from is required
app.realtime.sendToUser('alice', 'typed.typing', { who: 'bob' })
// undeclared types: allowed, untyped, data optional
app.realtime.broadcast('lobby', 'whatever', { any: 'thing' })
app.realtime.send('conn-id', 'whatever')
app.realtime.sendToUser('alice', 'whatever', [1, 2])
// a type name only known at run time is not checked at compile time
declare const someType: string
app.realtime.broadcast('lobby', someType, { anything: true })
use(sent)

// every connection knows the app-wide types
for (const conn of app.realtime.connections()) {
  conn.send('typed.news', { title: 't' })
  // @ts-expect-error typed.news needs a title
  conn.send('typed.news', {})
}
declare const plainConn: Connection
plainConn.broadcast('lobby', 'typed.typing', { from: 'x' })

// emits must be schemas
// @ts-expect-error a number is not a schema
defineRoute({ path: '/bad', emits: { x: 1 } })
// @ts-expect-error an ack must be a schema
defineRoute({ path: '/bad', messages: { x: { schema: Type.String(), ack: 'yes', handler: () => 'yes' } } })

// options
// @ts-expect-error validateOutgoing is a boolean
await app.register(realtime, { validateOutgoing: 'yes' })
// @ts-expect-error asyncapi needs a path
await app.register(realtime, { asyncapi: { info: { title: 'chat' } } })
const doc: AsyncApiDocument = app.realtime.asyncapi()
const version: '3.0.0' = doc.asyncapi
use(version)
