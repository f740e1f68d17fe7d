import { once } from 'node:events'
import { Writable } from 'node:stream'
import type { FastifyInstance, FastifyServerOptions } from 'fastify'
import type { RealtimeOptions } from '../lib/index.js'
import { build, type Inbox } from './helpers.js'

/**
 * `build` with test-friendly defaults: no heartbeat, a rate limit out of the
 * way, and no grace period (injected sockets never finish a close handshake).
 */
export async function setup (t: { after: (fn: () => unknown) => void }, opts: RealtimeOptions = {}, server: FastifyServerOptions = {}): Promise<FastifyInstance> {
  const app = await build(t, { heartbeat: false, rateLimit: { max: 100_000 }, closeGracePeriod: 0, ...opts }, server)
  await app.ready()
  return app
}

/** A pino destination that keeps every log line, parsed. */
export function logCapture (): { stream: Writable, lines: Array<Record<string, any>>, text: () => string } {
  const raw: string[] = []
  const lines: Array<Record<string, any>> = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue
        raw.push(line)
        lines.push(JSON.parse(line))
      }
      callback()
    }
  })
  return { stream, lines, text: () => raw.join('\n') }
}

/** Wait for the first message at index `from` or later that matches. */
export async function until (inbox: Inbox, from: number, match: (m: any) => boolean): Promise<any> {
  for (;;) {
    for (let i = from; i < inbox.messages.length; i++) {
      if (match(inbox.messages[i])) return inbox.messages[i]
    }
    await once(inbox.ws, 'message')
  }
}

/**
 * Everything the server sent this client in answer to what it sent so far:
 * a `ping` goes last and, as one connection's messages are handled in order,
 * whatever arrives before its `pong` is the complete answer.
 */
export async function settle (inbox: Inbox): Promise<any[]> {
  const from = inbox.messages.length
  inbox.send({ type: 'ping' })
  const pong = await until(inbox, from, (m) => m.type === 'pong')
  return inbox.messages.slice(from, inbox.messages.indexOf(pong, from))
}
