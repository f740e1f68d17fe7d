import t, { type Test } from 'tap'
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import WebSocket from 'ws'
import type { FastifyRequest } from 'fastify'
import { PRIVATE_FIELDS } from '../lib/ws/internals.js'
import { RealtimeSocket } from '../lib/ws/socket.js'

// Every private field and symbol of ws, @fastify/websocket and Node that lib/ws/
// relies on, checked on real sockets: a dependency release that renames one
// fails here, by name, instead of breaking production quietly.

interface Captured { server: WebSocket, request: FastifyRequest, client: WebSocket }

/** A real upgrade through @fastify/websocket; the checks run inside its handler, before the plugin lets anything go. */
async function capture (t: Test, options: { deflate: boolean, own: boolean }): Promise<{ results: Array<{ name: string, ok: boolean }> }> {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(websocket, {
    options: {
      perMessageDeflate: options.deflate,
      ...(options.own ? { WebSocket: RealtimeSocket as any, clientTracking: false } : {})
    }
  })
  const results: Array<{ name: string, ok: boolean }> = []
  let resolveCaptured: (c: Omit<Captured, 'client'>) => void
  const captured = new Promise<Omit<Captured, 'client'>>((resolve) => { resolveCaptured = resolve })
  app.get('/ws', { websocket: true }, (socket, request) => {
    for (const field of PRIVATE_FIELDS) {
      if (field.side === 'client') continue
      if (field.deflate === true && !options.deflate) continue
      results.push({ name: field.name, ok: field.check(socket as any, request) })
    }
    resolveCaptured({ server: socket as any, request })
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const client = new WebSocket(`ws://127.0.0.1:${port}/ws`, { perMessageDeflate: options.deflate })
  await new Promise((resolve, reject) => { client.once('open', resolve); client.once('error', reject) })
  const { server } = await captured
  for (const field of PRIVATE_FIELDS) {
    if (field.side === 'client') results.push({ name: field.name, ok: field.check(client as any) })
  }
  t.equal(server.readyState, 1)
  client.terminate()
  return { results }
}

for (const own of [true, false]) {
  for (const deflate of [false, true]) {
    const label = `${own ? 'the plugin\'s own' : 'an app-registered'} @fastify/websocket, ${deflate ? 'with' : 'without'} permessage-deflate`
    t.test(`private fields exist on real sockets: ${label}`, async (t) => {
      const { results } = await capture(t, { deflate, own })
      t.ok(results.length >= 8, 'every field was checked')
      for (const { name, ok } of results) t.ok(ok, `${name} exists with the expected type (ws or @fastify/websocket changed it: update lib/ws/internals.ts)`)
    })
  }
}

t.test('no file outside lib/ws/ names a private field of ws, @fastify/websocket or Node', async (t) => {
  const root = fileURLToPath(new URL('../lib/', import.meta.url))
  const offenders: string[] = []
  const walk = (dir: string): void => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name)
      if (entry.isDirectory()) {
        if (entry.name !== 'ws') walk(path)
      } else if (entry.name.endsWith('.ts')) {
        const text = readFileSync(path, 'utf8')
        if (/\._(socket|sender|receiver|extensions|closeFrameReceived|httpMessage)\b|ws-head/.test(text)) offenders.push(path.slice(root.length))
      }
    }
  }
  walk(root)
  t.same(offenders, [], 'only lib/ws/ reaches into dependencies\' private state')
})
