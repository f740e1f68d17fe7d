// Memory pinned by a slow handler (issue 11, server item 4): while an async
// handler is pending, what a connection sent after it waits, bounded in bytes
// (maxPayload + 1 MiB): past MAX_BACKLOG_BYTES the socket is paused and TCP
// pushes back, so the rest waits in the peer's and the kernel's buffers.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { Type } from '@sinclair/typebox'
import { MAX_BACKLOG_BYTES } from '../lib/inbound.js'
import { kBacklog } from '../lib/symbols.js'
import { build, connect, internal, listen, sign, sleep } from './helpers.js'
import { settle } from './protocol-helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const MAX_PAYLOAD = 65_536

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

/** Heap and Buffer memory of this process after a full collection. */
function memory (): number {
  gc()
  gc()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

function backlogBytes (conn: unknown): number {
  return internal(conn as any)[kBacklog]?.bytes ?? 0
}

/** A route whose `slow` handler never settles: everything the client sends after it waits. */
const slowRoute = {
  path: '/rt',
  messages: {
    slow: { schema: Type.Any(), handler: () => new Promise(() => {}) },
    quick: { schema: Type.Any(), handler: () => 'done' }
  }
}

// Clients run in a child process, so their send buffers are not counted in this
// process's memory. Each opens, waits for "go", then sends `perClient` bytes of
// 60 KB messages, one after the other as the socket takes them, and reports
// its progress every 100 ms.
const CLIENTS = `
import WebSocket from 'ws'
const [url, token, count, perClient, size] = JSON.parse(process.argv[1])
const body = JSON.stringify({ type: 'slow', data: 'x'.repeat(size) })
let open = 0
let sent = 0
const sockets = []
for (let i = 0; i < count; i++) {
  const ws = new WebSocket(url, { headers: { authorization: 'Bearer ' + token } })
  ws.on('error', () => {})
  ws.on('open', () => { open++ })
  sockets.push(ws)
}
function pump (ws, mine) {
  if (mine >= perClient || ws.readyState !== 1) return
  ws.send(body, (err) => {
    if (err) return
    sent += body.length
    pump(ws, mine + body.length)
  })
}
process.stdin.once('data', () => { for (const ws of sockets) pump(ws, 0) })
setInterval(() => { process.stdout.write(JSON.stringify({ open, sent }) + '\\n') }, 100)
`

t.test('100 connections pinned by a handler that never resolves: each holds at most maxPayload + 1 MiB of unprocessed input', async (t) => {
  const count = 100
  const perClient = 8 * 1024 * 1024
  const size = 60 * 1024
  // the defaults (rateLimit 100 a second: up to 100 waiting messages of 60 KB, 6 MB a connection, before the byte bound)
  const app = await build(t, { routes: [slowRoute], heartbeat: false, closeGracePeriod: 0, maxPayload: MAX_PAYLOAD })
  const url = await listen(app)
  const token = sign(app, 'pinner')

  const child = spawn(process.execPath, ['--input-type=module', '-e', CLIENTS, JSON.stringify([`${url}/rt`, token, count, perClient, size])],
    { cwd: root, stdio: ['pipe', 'pipe', 'inherit'] })
  t.after(() => { child.kill() })
  let last = { open: 0, sent: 0 }
  let unchanged = 0
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n')) {
      if (line === '') continue
      const report = JSON.parse(line)
      // progress stalls when this many reports in a row (a second's worth) show the same count
      unchanged = report.sent === last.sent ? unchanged + 1 : 0
      last = report
    }
  })
  while (app.realtime.connections().length < count) await sleep(20)
  const before = memory()

  child.stdin.write('go\n')
  // wait until the clients stop making progress (TCP pushed back) or sent everything
  const started = Date.now()
  const done = (): boolean => last.sent >= count * perClient || (last.sent > 0 && unchanged >= 10) || Date.now() - started > 60_000
  while (!done()) await sleep(50)
  const conns = app.realtime.connections()
  t.equal(conns.length, count, 'every connection is still open')
  const buffered = conns.map(backlogBytes)
  const after = memory()

  const perConnection = Math.round((after - before) / count)
  const maxBuffered = Math.max(...buffered)
  const meanBuffered = Math.round(buffered.reduce((a, b) => a + b, 0) / count)
  t.comment(`clients sent ${(last.sent / count / 1024 / 1024).toFixed(2)} MiB each (kernel buffers included) in ${Date.now() - started} ms`)
  t.comment(`server: input waiting behind the handler ${meanBuffered} bytes per connection on average, ${maxBuffered} at most; ` +
    `heap + Buffers grew ${perConnection} bytes per pinned connection (bound ${MAX_PAYLOAD + MAX_BACKLOG_BYTES})`)
  t.ok(maxBuffered > MAX_BACKLOG_BYTES / 2, 'the handler did pin input (the test measures something)')
  t.ok(maxBuffered <= MAX_PAYLOAD + MAX_BACKLOG_BYTES, `no connection holds more than maxPayload + 1 MiB of input (${maxBuffered})`)
  t.ok(perConnection <= MAX_PAYLOAD + MAX_BACKLOG_BYTES + 256 * 1024, `memory per pinned connection stays near the bound (${perConnection} bytes)`)
  t.ok(last.sent < count * perClient, 'the clients could not send everything: TCP pushed back')
  child.kill()
  await once(child, 'exit')
})

t.test('a paused connection reads again once the handler settles, and every waiting message is handled in order', async (t) => {
  let release!: () => void
  const order: number[] = []
  const app = await build(t, {
    heartbeat: false,
    closeGracePeriod: 0,
    rateLimit: { max: 10_000 },
    routes: [{
      path: '/rt',
      messages: {
        hold: { schema: Type.Any(), handler: async () => { await new Promise<void>((resolve) => { release = resolve }) } },
        n: { schema: Type.Object({ n: Type.Number(), pad: Type.String() }), handler: (_conn, data) => { order.push(data.n) } }
      }
    }]
  })
  const url = await listen(app)
  const client = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'a')}` } })
  client.send({ type: 'hold', id: 'h' })
  const pad = 'y'.repeat(50 * 1024)
  const total = 60 // 3 MB behind the handler
  for (let n = 0; n < total; n++) client.send({ type: 'n', data: { n, pad } })
  const conn = app.realtime.connections()[0]
  while (backlogBytes(conn) <= MAX_BACKLOG_BYTES) await sleep(10)
  await sleep(200)
  const held = backlogBytes(conn)
  t.ok(held <= MAX_PAYLOAD + MAX_BACKLOG_BYTES, `paused with ${held} bytes waiting`)
  t.ok(order.length === 0, 'nothing ran past the pending handler')
  release()
  t.same(await client.type('ack'), { type: 'ack', id: 'h' })
  await settle(client)
  t.same(order, Array.from({ length: total }, (_, n) => n), 'every message ran, in order, after the pause')
  t.equal(backlogBytes(conn), 0, 'nothing is left waiting')
  client.ws.terminate()
})
