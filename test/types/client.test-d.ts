// Type tests of the client: checked by `npm run typecheck` (tsc), never run.
// Each @ts-expect-error line must stay an error; a type that loosened would fail the check.
import { Type } from '@sinclair/typebox'
import { defineRoute } from '../../lib/index.js'
import {
  createClient, RealtimeClientError, backoffDelay,
  type CloseInfo, type JoinAck, type KickedInfo, type ResyncInfo, type OutgoingEnvelope, type PresenceEvent, type ReconnectInfo, type ClientState
} from '../../lib/client/index.js'

export const chat = defineRoute({
  path: '/chat',
  messages: {
    'chat.send': {
      schema: Type.Object({ text: Type.String(), urgent: Type.Optional(Type.Boolean()) }),
      handler () { return { ok: true } }
    },
    count: {
      schema: Type.Number(),
      handler (_conn, data) { return data * 2 }
    }
  }
})

/** Marks values as used. */
function use (..._values: unknown[]): void {}

interface Incoming {
  'chat.message': { from: string, text: string }
}

// typed from the server's route definition
const client = createClient<typeof chat, Incoming>('ws://127.0.0.1:3000/chat', { token: 'jwt' })
client.send('chat.send', { text: 'hi' })
client.send('chat.send', { text: 'hi', urgent: true }, 'lobby')
client.send('count', 2)
// @ts-expect-error text must be a string
client.send('chat.send', { text: 1 })
// @ts-expect-error text is required
client.send('chat.send', {})
// @ts-expect-error no such message type on the route
client.send('chat.delete', { id: 1 })
// @ts-expect-error count takes a number
client.send('count', '2')
// @ts-expect-error room is a string
client.send('chat.send', { text: 'hi' }, 1)

use(client.request('chat.send', { text: 'hi' }, { room: 'lobby', timeout: 1000 }))
// @ts-expect-error request checks the payload too
use(client.request('chat.send', { text: false }))
// @ts-expect-error timeout is a number
use(client.request('count', 1, { timeout: '1s' }))

// incoming messages are typed from the second type argument
client.on('chat.message', (data, msg) => {
  const from: string = data.from
  const room: string | undefined = msg.room
  const offset: number | undefined = msg.offset
  // @ts-expect-error text is a string
  const wrong: number = data.text
  use(from, room, offset, wrong)
})
client.on('something.else', (data) => {
  // @ts-expect-error an undeclared type's data is unknown
  use(data.anything)
})
client.on('presence', (data: PresenceEvent, msg) => { use(data.member.sub, msg.room) })
client.on('presence', (data) => {
  // @ts-expect-error event is 'join' | 'leave'
  const n: number = data.event
  use(n)
})
// lifecycle events carry their own data
client.on('close', (data: CloseInfo) => { const code: number = data.code; use(code) })
client.on('reconnecting', (data: ReconnectInfo) => { use(data.attempt + data.delay) })
client.on('drop', (data: OutgoingEnvelope, event) => {
  const reason: 'queue_full' | 'rate_limited' | 'timeout' | 'closed' | undefined = event.reason
  use(reason, data.type)
})
// @ts-expect-error drop data is the dropped envelope, not { reason, message }
client.on('drop', (data) => { use(data.message) })
client.on('error', (err) => { const code: string = err.code; use(code) })
// @ts-expect-error close data is { code, reason }, not a number
client.on('close', (data: number) => { use(data) })
const off = client.on('open', () => {})
off()

const joined: Promise<JoinAck> = client.join('lobby')
// join with history: the ack carries offset, epoch and recovered
const withHistory: Promise<JoinAck> = client.join('news', { history: 50 })
withHistory.then((ack) => {
  const offset: number | undefined = ack.offset
  const epoch: string | undefined = ack.epoch
  const recovered: boolean | undefined = ack.recovered
  use(offset, epoch, recovered)
}, () => {})
// @ts-expect-error history is a number
use(client.join('news', { history: '50' }))
// @ts-expect-error since is the client's business: join asks with `history` only
use(client.join('news', { since: { offset: 1, epoch: 'e' } }))
// @ts-expect-error ack.offset is a number
const badOffset: Promise<string | undefined> = client.join('news').then((ack) => ack.offset)
use(withHistory, badOffset)
client.on('resync', (data: ResyncInfo, msg) => { const room: string = data.room; use(room, msg.type) })
client.on('kicked', (data: KickedInfo) => { const why: string = data.code; use(why, data.room) })
// @ts-expect-error resync data is { room }
client.on('resync', (data: { epoch: string }) => { use(data) })
client.on('error', (err) => { const failures: number | undefined = err.failures; use(failures) })
const left: Promise<void> = client.leave('lobby')
const state: ClientState = client.state
const closing: Promise<void> = client.close()
use(joined, left, state, closing)

// ack types: unknown through defineRoute (its handlers return unknown), inferred from a plain route object
const unknownAck: Promise<unknown> = client.request('count', 1)
export const plainRoute = {
  path: '/calc',
  messages: {
    double: { schema: Type.Number(), handler: (_conn: unknown, data: number) => ({ result: data * 2 }) }
  }
}
const calc = createClient<typeof plainRoute>('ws://127.0.0.1:3000/calc')
const doubled: Promise<{ result: number }> = calc.request('double', 2)
// @ts-expect-error the ack is { result: number }
const notString: Promise<string> = calc.request('double', 2)
// @ts-expect-error double takes a number
calc.send('double', 'two')
use(unknownAck, doubled, notString)

// a plain { type: payload } map
const plain = createClient<{ 'note.add': { body: string } }>('ws://127.0.0.1:3000/notes', { getToken: async () => 'jwt' })
plain.send('note.add', { body: 'x' })
// @ts-expect-error body is a string
plain.send('note.add', { body: 1 })

// untyped: anything goes
const loose = createClient('ws://127.0.0.1:3000/chat')
loose.send('whatever', { any: 'thing' })
loose.on('whatever', (data) => { use(data.any) })

// options are checked
// @ts-expect-error getToken returns a token
createClient('ws://x/chat', { getToken: () => 1 })
// @ts-expect-error reconnect.base is a number
createClient('ws://x/chat', { reconnect: { base: '1s' } })
createClient('ws://x/chat', { reconnect: false, heartbeat: false, queue: { max: 10 }, requestTimeout: 5000, rooms: ['a'] })
createClient('ws://x/chat', { reconnect: { cap: 5000, resetAfter: 5000, maxConnectFailures: Infinity }, rateLimit: { max: 50, windowMs: 1000, retries: 3 } })
// @ts-expect-error rateLimit.max is a number
createClient('ws://x/chat', { rateLimit: { max: '50' } })
// @ts-expect-error the queue's pace moved to rateLimit
createClient('ws://x/chat', { queue: { flushBatch: 50 } })

const err = new RealtimeClientError('TIMEOUT', 'no ack')
const code: string = err.code
const delay: number = backoffDelay(3, { base: 500, cap: 30_000, random: Math.random })
use(code, delay)
