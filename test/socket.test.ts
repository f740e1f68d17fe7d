import t from 'tap'
import { kPending } from '../lib/symbols.js'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import websocket from '@fastify/websocket'
import realtime from '../lib/index.js'
import { SECRET, build, closed, connect, listen, sign, type Inbox, hub } from './helpers.js'

// RealtimeSocket (and, for sockets of an app-registered @fastify/websocket, the
// close wrapper of shutdown.ts): a close writes the frames the turn holds first.

/**
 * An app on a real port with one client connected. With `foreign`, the app
 * registered @fastify/websocket first: its sockets are plain ws ones, whose
 * close the plugin wraps per socket.
 */
async function clientOf (t: Parameters<typeof build>[0], foreign: boolean): Promise<{ app: FastifyInstance, client: Inbox }> {
  const a = Fastify()
  t.after(() => a.close())
  await a.register(jwt, { secret: SECRET })
  if (foreign) await a.register(websocket)
  await a.register(realtime, { heartbeat: false, routes: [{ path: '/rt' }] })
  const url = await listen(a)
  const client = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(a, 'x')}` } })
  return { app: a, client }
}

t.test('replies to messages sent just before the client\'s close frame arrive before the server\'s close frame', async (t) => {
  for (const foreign of [false, true]) {
    const { client: c } = await clientOf(t, foreign)
    const done = closed(c.ws)
    // both frames in one write, so the server reads them in one turn
    const socket = (c.ws as any)._socket
    socket.cork()
    c.send({ type: 'ping' })
    c.send({ type: 'ping' })
    c.ws.close(1000, 'bye')
    socket.uncork()
    t.same(await done, { code: 1000, reason: 'bye' }, `${foreign ? 'foreign' : 'own'} @fastify/websocket: the close was answered`)
    t.same(c.messages, [{ type: 'pong' }, { type: 'pong' }], 'after both pongs')
  }
})

t.test('a close started on the server writes what the turn holds first, whoever registered @fastify/websocket', async (t) => {
  for (const foreign of [false, true]) {
    const { app: a, client: c } = await clientOf(t, foreign)
    const done = closed(c.ws)
    const [conn] = hub(a).connections()
    conn.send('one')
    conn.send('two')
    t.ok(conn[kPending] !== undefined, 'held for the turn')
    conn.ws.close(4000, 'raw close') // straight on the socket, not conn.close()
    t.same(await done, { code: 4000, reason: 'raw close' })
    t.same(c.messages, [{ type: 'one' }, { type: 'two' }], `${foreign ? 'foreign' : 'own'}: both frames came before the close frame`)
  }
})
