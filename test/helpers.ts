import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import jwt from '@fastify/jwt'
import { once } from 'node:events'
import WebSocket from 'ws'
import realtime from '../lib/index.js'
import type { Connection, RealtimeOptions } from '../lib/index.js'
import type { RealtimeConnection } from '../lib/connection.js'
import type { Hub } from '../lib/hub.js'
import { hubOf } from '../lib/server.js'

export const SECRET = 'test-secret-that-is-long-enough-for-hs256'

/** A Fastify app with @fastify/jwt and fastify-realtime registered; closed after the test. */
export async function build (t: { after: (fn: () => unknown) => void }, opts: RealtimeOptions = {}, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(server)
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(realtime, opts)
  return app
}

/** Sign a token for `sub` (extra claims and jwt sign options allowed). */
export function sign (app: FastifyInstance, sub: string, claims: Record<string, unknown> = {}, options: Record<string, unknown> = {}): string {
  return (app as any).jwt.sign({ sub, ...claims }, options)
}

export function bearer (token: string): { headers: Record<string, string> } {
  return { headers: { authorization: `Bearer ${token}` } }
}

/** Collects every message a client receives, parsed; `next()` waits for the next one. */
export class Inbox {
  readonly messages: any[] = []
  #waiters: Array<{ match: (m: any) => boolean, resolve: (m: any) => void }> = []
  #seen = 0

  constructor (readonly ws: WebSocket) {
    ws.on('message', (raw) => {
      const msg = JSON.parse(raw.toString())
      this.messages.push(msg)
      const i = this.#waiters.findIndex((w) => w.match(msg))
      if (i >= 0) {
        const [w] = this.#waiters.splice(i, 1)
        w.resolve(msg)
      }
    })
  }

  /** The next message (after the ones already returned by next) matching `match`. */
  async next (match: (m: any) => boolean = () => true): Promise<any> {
    for (let i = this.#seen; i < this.messages.length; i++) {
      if (match(this.messages[i])) {
        this.#seen = i + 1
        return this.messages[i]
      }
    }
    return await new Promise((resolve) => {
      this.#waiters.push({
        match,
        resolve: (m) => {
          this.#seen = this.messages.length
          resolve(m)
        }
      })
    })
  }

  /** The next message of `type`. */
  async type (type: string): Promise<any> {
    return await this.next((m) => m.type === type)
  }

  send (msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg))
  }

  /** Send and wait for the ack or error with the same id. */
  async request (msg: Record<string, unknown>): Promise<any> {
    this.send(msg)
    return await this.next((m) => (m.type === 'ack' || m.type === 'error') && m.id === msg.id)
  }
}

/** Connect through `app.injectWS` and wrap in an Inbox. */
export async function inject (app: FastifyInstance, path: string, token?: string, headers: Record<string, string> = {}): Promise<Inbox> {
  const ws = await app.injectWS(path, { headers: { ...(token === undefined ? {} : { authorization: `Bearer ${token}` }), ...headers } })
  return new Inbox(ws)
}

/** Wait for a client socket's close event; resolves to { code, reason }. */
export async function closed (ws: WebSocket): Promise<{ code: number, reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('already closed')
  const [code, reason] = await once(ws, 'close') as [number, Buffer]
  return { code, reason: reason.toString() }
}

/** Listen on an ephemeral loopback port; returns its ws:// base url. */
export async function listen (app: FastifyInstance): Promise<string> {
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return address.replace('http://', 'ws://')
}

/** Open a real ws client; resolves once open, rejects with the HTTP status on refusal. */
export async function connect (url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<Inbox> {
  const ws = new WebSocket(url, protocols, options)
  return await new Promise((resolve, reject) => {
    ws.once('open', () => resolve(new Inbox(ws)))
    ws.once('unexpected-response', (_req, res) => {
      const error = Object.assign(new Error(`HTTP ${res.statusCode}`), { statusCode: res.statusCode, headers: res.headers })
      ws.terminate()
      reject(error)
    })
    ws.once('error', reject)
  })
}

export async function sleep (ms: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, ms))
}

/** The hub behind `app.realtime`: internal state a test may read (slots, closing, options). */
export function hub (app: FastifyInstance): Hub {
  return hubOf(app.realtime)
}

/** A connection as the plugin holds it (its socket, its writer state). */
export function internal (conn: Connection): RealtimeConnection {
  return conn as RealtimeConnection
}

/** The app's only connection (a test with one client). */
export function only (app: FastifyInstance): Connection {
  const conns = app.realtime.connections()
  if (conns.length !== 1) throw new Error(`expected one connection, found ${conns.length}`)
  return conns[0]
}
