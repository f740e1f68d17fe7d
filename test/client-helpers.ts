// Helpers of the client tests: a chat route that records what the server
// handled, a server on a chosen port, and bounded waits on client events.
import type { FastifyInstance } from 'fastify'
import { createServer } from 'node:net'
import { Type } from '@sinclair/typebox'
import { build, sleep } from './helpers.js'
import { defineRoute, RealtimeError, type RealtimeOptions } from '../lib/index.js'
import type { RealtimeClient } from '../lib/client/index.js'

/** What the `chat.send` handler saw: the payload and the rooms the connection was in at that moment. */
export interface Handled {
  n: number
  sub: string | null
  rooms: string[]
}

export function chatRoute (handled: Handled[] = []) {
  return defineRoute({
    path: '/chat',
    presence: true,
    canJoin: (_conn, room) => !room.startsWith('private:'),
    messages: {
      'chat.send': {
        schema: Type.Object({ n: Type.Number() }),
        handler (conn, data, msg) {
          handled.push({ n: data.n, sub: conn.sub, rooms: [...conn.rooms].sort() })
          if (msg.room !== undefined) conn.broadcast(msg.room, 'chat.message', { from: conn.sub, n: data.n })
          return { got: data.n }
        }
      },
      fail: {
        schema: Type.Object({}),
        handler () { throw new RealtimeError('not today', { code: 'NOPE' }) }
      },
      // never answers, and holds the connection's later messages: for timeouts
      hang: {
        schema: Type.Null(),
        async handler () { return await new Promise(() => {}) }
      },
      slow: {
        schema: Type.Number(),
        async handler (_conn, ms) {
          await sleep(ms)
          return 'done'
        }
      }
    }
  })
}

export type ChatRoute = ReturnType<typeof chatRoute>

/** A chat server listening on 127.0.0.1:`port` (0: any); `upgrades` counts upgrade requests. */
export async function chatServer (t: { after: (fn: () => unknown) => void }, opts: { port?: number, handled?: Handled[], realtime?: RealtimeOptions } = {}): Promise<{ app: FastifyInstance, url: string, port: number, upgrades: () => number }> {
  const app = await build(t, { heartbeat: false, closeGracePeriod: 200, routes: [chatRoute(opts.handled)], ...opts.realtime })
  let upgrades = 0
  app.addHook('onRequest', async (request) => {
    if (request.headers.upgrade !== undefined) upgrades++
  })
  await app.listen({ port: opts.port ?? 0, host: '127.0.0.1' })
  const port = (app.server.address() as { port: number }).port
  return { app, url: `ws://127.0.0.1:${port}/chat`, port, upgrades: () => upgrades }
}

/** Resolve with the data of the next `type` event (that passes `match`); reject after `ms`. */
export async function nextEvent<T = any> (client: RealtimeClient<any, any, any>, type: string, match: (data: any) => boolean = () => true, ms = 5000): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      off()
      reject(new Error(`no "${type}" event within ${ms} ms`))
    }, ms)
    const off = client.on(type, (data: any) => {
      if (!match(data)) return
      clearTimeout(timer)
      off()
      resolve(data)
    })
  })
}

/** Resolve once the client is open (now or at its next `open` event). */
export async function opened (client: RealtimeClient<any, any, any>, ms = 5000): Promise<void> {
  if (client.state !== 'open') await nextEvent(client, 'open', () => true, ms)
}

/** Every event of the given types, in order, as [type, data]. */
export function record (client: RealtimeClient<any, any, any>, types: string[]): Array<[string, any]> {
  const seen: Array<[string, any]> = []
  for (const type of types) client.on(type, (data: any) => { seen.push([type, data]) })
  return seen
}

/** Poll `check` until it is true; fail after `ms`. */
export async function until (check: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`)
    await sleep(5)
  }
}

/** A port that was free a moment ago. */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}
