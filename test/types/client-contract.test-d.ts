// Type tests of the client and the test kit, typed both ways from one route
// definition: what they send from `messages`, request results from `ack`,
// what they receive from `emits`. Checked by `npm run typecheck`, never run.
import type { FastifyInstance } from 'fastify'
import { Type } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import { defineRoute } from '../../lib/index.js'
import { createClient } from '../../lib/client/index.js'
import { connect } from '../../lib/testing/index.js'

/** Marks values as used. */
function use (..._values: unknown[]): void {}

export const room = defineRoute({
  path: '/room',
  emits: {
    'room.message': Type.Object({ from: Type.String(), text: Type.String() }),
    'room.count': T1.Integer()
  },
  messages: {
    'room.say': {
      schema: Type.Object({ text: Type.String() }),
      ack: Type.Object({ id: Type.Number() }),
      handler: () => ({ id: 1 })
    },
    'room.add': {
      schema: T1.Object({ a: T1.Number(), b: T1.Number() }),
      ack: T1.Number(),
      handler: (_conn, data) => data.a + data.b
    },
    'room.free': {
      schema: Type.String(),
      handler: () => ({ anything: true })
    }
  }
})

const client = createClient<typeof room>('ws://127.0.0.1:3000/room', { token: 'jwt' })
// send and request payloads from `messages`
client.send('room.say', { text: 'hi' }, 'lobby')
client.send('room.add', { a: 1, b: 2 })
// @ts-expect-error text is a string
client.send('room.say', { text: 1 })
// @ts-expect-error b is required (a TypeBox 1.x schema)
client.send('room.add', { a: 1 })
// @ts-expect-error not a message of the route (it is one the server emits)
client.send('room.message', { from: 'a', text: 'b' })

// request's result from `ack`
const said: Promise<{ id: number }> = client.request('room.say', { text: 'hi' })
const sum: Promise<number> = client.request('room.add', { a: 1, b: 2 })
// @ts-expect-error the ack of room.say is { id: number }
const wrongAck: Promise<{ id: string }> = client.request('room.say', { text: 'hi' })
// @ts-expect-error the ack of room.add is a number
const wrongSum: Promise<string> = client.request('room.add', { a: 1, b: 2 })
// without an ack schema: unknown through defineRoute, as before
const free: Promise<unknown> = client.request('room.free', 'x')
use(said, sum, wrongAck, wrongSum, free)

// on(type) data from `emits`
client.on('room.message', (data, msg) => {
  const text: string = data.text
  const r: string | undefined = msg.room
  // @ts-expect-error from is a string
  const n: number = data.from
  use(text, r, n)
})
client.on('room.count', (data) => {
  const count: number = data
  // @ts-expect-error a number
  const s: string = data
  use(count, s)
})
client.on('undeclared', (data) => {
  // @ts-expect-error a type the route does not emit: unknown data
  use(data.anything)
})
client.on('presence', (data) => { use(data.member.sub) })
client.on('close', (data) => { use(data.code) })

// a second type argument still overrides the incoming types
const custom = createClient<typeof room, { 'room.message': { body: string } }>('ws://x/room')
custom.on('room.message', (data) => { const body: string = data.body; use(body) })

// a route without emits keeps incoming messages untyped, as before
export const plain = defineRoute({ path: '/plain', messages: { ping2: { schema: Type.Null(), handler: () => null } } })
const loose = createClient<typeof plain>('ws://x/plain')
loose.on('whatever', (data) => { use(data.any.thing) })

// the test kit: the same typing
declare const app: FastifyInstance
const conn = await connect<typeof room>(app, '/room', { user: { sub: 'alice' } })
conn.send('room.say', { text: 'hi' }, 'lobby')
// @ts-expect-error text is a string
conn.send('room.say', { text: 2 })
const id: number = (await conn.request('room.say', { text: 'hi' }, { room: 'lobby', timeout: 100 })).id
const total: number = await conn.request('room.add', { a: 1, b: 1 })
// @ts-expect-error the ack is a number
const notString: string = await conn.request('room.add', { a: 1, b: 1 })
const message = await conn.next('room.message', { timeout: 500 })
const from: string | undefined = message.data?.from
// @ts-expect-error text is a string
const textNumber: number | undefined = message.data?.text
const joined = await conn.join('lobby', { since: { offset: 1, epoch: 'e' } })
const members: number | undefined = joined.total
// @ts-expect-error join data is { since } or { history }
await conn.join('lobby', { since: 3 })
const closed: { code: number, reason: string } = await conn.close()
use(id, total, notString, from, textNumber, members, closed)
