// Helpers of the client tests: a chat route that records what the server
// handled, a server on a chosen port, bounded waits on client events, and a
// fake server for what the real one does not send.
import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { WebSocketServer, type WebSocket } from 'ws'
import { Type } from '@sinclair/typebox'
import { build, sleep } from './helpers.js'
import { until } from './helpers/wait.js'
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

// the project's one wait and port picker, under the names the client tests import
export { freePort, until } from './helpers/wait.js'

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
export function record (client: RealtimeClient<any, any, any>, types: string[]): Array<[string, any, any]> {
  const seen: Array<[string, any, any]> = []
  // a drop's reason is in its second argument: kept as a third element for drops only
  for (const type of types) client.on(type, (data: any, message: any) => { seen.push(type === 'drop' ? [type, data, message] : [type, data] as any) })
  return seen
}

/** What a fake server's socket received from the client, parsed; `next` hands each frame out once. */
export class Received {
  readonly frames: any[] = []
  readonly #taken = new Set<any>()
  #waiters: Array<() => void> = []

  constructor (socket: WebSocket) {
    socket.on('message', (raw) => {
      this.frames.push(JSON.parse(raw.toString()))
      for (const wake of this.#waiters.splice(0)) wake()
    })
  }

  /** The oldest frame not handed out yet that matches; waits for it up to `ms`. */
  async next (match: (frame: any) => boolean = () => true, ms = 5000): Promise<any> {
    const end = Date.now() + ms
    for (;;) {
      const frame = this.frames.find((f) => !this.#taken.has(f) && match(f))
      if (frame !== undefined) {
        this.#taken.add(frame)
        return frame
      }
      const left = end - Date.now()
      if (left <= 0) throw new Error(`no matching frame within ${ms} ms`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left)
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  /** The next frame of `type` (and `room`, when given). */
  async type (type: string, room?: string, ms?: number): Promise<any> {
    return await this.next((f) => f.type === type && (room === undefined || f.room === room), ms)
  }
}

/** One connection to a fake server: the socket, what it received, and its index (0 for the first). */
export interface FakeLink {
  socket: WebSocket
  received: Received
  index: number
  send: (frame: unknown) => void
}

export interface FakeServer {
  url: string
  port: number
  links: FakeLink[]
  /** Resolves with the `index`th link (0-based), waiting for it to connect. */
  link: (index: number, ms?: number) => Promise<FakeLink>
}

/**
 * A bare `ws` server on 127.0.0.1, for protocol behaviour the real server does
 * not have yet or that it would never send (malformed frames): `onLink` runs
 * for each connection.
 */
export async function fakeServer (t: { after: (fn: () => unknown) => void }, onLink: (link: FakeLink) => void = () => {}): Promise<FakeServer> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
  await once(wss, 'listening')
  const links: FakeLink[] = []
  wss.on('connection', (socket) => {
    const link: FakeLink = {
      socket,
      received: new Received(socket),
      index: links.length,
      send: (frame) => { socket.send(typeof frame === 'string' ? frame : JSON.stringify(frame)) }
    }
    links.push(link)
    onLink(link)
  })
  t.after(async () => {
    for (const client of wss.clients) client.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  const port = (wss.address() as { port: number }).port
  return {
    url: `ws://127.0.0.1:${port}/`,
    port,
    links,
    link: async (index, ms = 5000) => {
      await until(() => links.length > index, ms, `connection ${index + 1}`)
      return links[index]
    }
  }
}

/** Answer a join (or any request) frame with an ack carrying `data`. */
export function ack (link: FakeLink, frame: { id?: unknown }, data: unknown): void {
  link.send({ type: 'ack', id: frame.id, data })
}
