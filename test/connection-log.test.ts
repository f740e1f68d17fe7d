// The two log lines of a connection (open: connId, route, sub, remote address;
// closed: code, reason, duration, messages in and out), at the level the app
// chose, nothing per message, and never the query token.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import { Type } from '@sinclair/typebox'
import realtime, { type RealtimeOptions } from '../lib/index.js'
import { SECRET, closed, connect, inject, listen, sign, sleep } from './helpers.js'
import { logCapture } from './protocol-helpers.js'

const OPEN = 'fastify-realtime: connection open'
const CLOSED = 'fastify-realtime: connection closed'

async function logged (t: { after: (fn: () => unknown) => void }, opts: RealtimeOptions = {}, level = 'info'): Promise<{ app: FastifyInstance, lines: Array<Record<string, any>>, text: () => string }> {
  const { stream, lines, text } = logCapture()
  const app = Fastify({ logger: { level, stream } })
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(realtime, {
    heartbeat: false,
    closeGracePeriod: 0,
    routes: [{ path: '/rt', messages: { echo: { schema: Type.Any(), handler: (_conn, data) => data } } }],
    ...opts
  })
  await app.ready()
  return { app, lines, text }
}

async function until (check: () => boolean): Promise<void> {
  const end = Date.now() + 5000
  while (!check()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await sleep(2)
  }
}

t.test('one line when a connection opens, one when it closes; nothing per message; the query token never', async (t) => {
  const { app, lines, text } = await logged(t)
  const url = await listen(app)
  const token = sign(app, 'alice')
  const a = await connect(`${url}/rt?room=x&token=${token}`)
  const connId = app.realtime.connections()[0].id
  await a.request({ type: 'join', room: 'r', id: 1 })
  for (let i = 0; i < 20; i++) await a.request({ type: 'echo', data: i, id: i + 2 })
  a.send({ type: 'ping' })
  await a.type('pong')
  app.realtime.broadcast('r', 'news', {})
  await a.type('news')
  a.ws.close(1000, 'done')
  await until(() => lines.some((l) => l.msg === CLOSED))

  const mine = lines.filter((l) => l.connId === connId)
  t.same(mine.map((l) => l.msg), [OPEN, CLOSED], 'exactly two lines for this connection, whatever it sent')
  const [open, close] = mine
  t.match(open, { level: 30, connId, route: '/rt', sub: 'alice', remoteAddress: '127.0.0.1' })
  t.type(open.reqId, 'string', 'logged with the upgrade request\'s logger (its reqId)')
  t.match(close, { level: 30, connId, route: '/rt', code: 1000, reason: 'done', messagesIn: 22, messagesOut: 23 })
  t.ok(Number.isInteger(close.durationMs) && close.durationMs >= 0, 'durationMs')
  t.equal(close.reqId, open.reqId)
  t.notOk(text().includes(token), 'the token is in no line')
  t.notOk(text().includes(token.split('.')[2]), 'nor its signature')
})

t.test('injectWS with ?token= too; a close the server began logs the code it sent', async (t) => {
  const { app, lines, text } = await logged(t)
  const token = sign(app, 'bob')
  const ws = await app.injectWS(`/rt?token=${token}`)
  const conn = app.realtime.connections()[0]
  const done = closed(ws)
  conn.close(4403, 'kicked')
  await done
  await until(() => lines.some((l) => l.msg === CLOSED))
  const close = lines.find((l) => l.msg === CLOSED)
  t.match(close, { connId: conn.id, code: 4403, reason: 'kicked', messagesIn: 0, messagesOut: 0 })
  t.match(lines.find((l) => l.msg === OPEN), { connId: conn.id, sub: 'bob' })
  t.notOk(text().includes(token))
})

t.test('an abrupt end is 1006; the reason is empty', async (t) => {
  const { app, lines } = await logged(t)
  const a = await inject(app, '/rt', sign(app, 'carol'))
  a.ws.terminate()
  await until(() => lines.some((l) => l.msg === CLOSED))
  t.match(lines.find((l) => l.msg === CLOSED), { code: 1006, reason: '' })
})

t.test('connectionLogLevel picks the level; silent logs nothing; below the logger\'s level nothing is written', async (t) => {
  const debug = await logged(t, { connectionLogLevel: 'debug' }, 'debug')
  const a = await inject(debug.app, '/rt', sign(debug.app, 'a'))
  a.ws.close()
  await until(() => debug.lines.some((l) => l.msg === CLOSED))
  t.same(debug.lines.filter((l) => l.msg === OPEN || l.msg === CLOSED).map((l) => l.level), [20, 20])

  const quiet = await logged(t, { connectionLogLevel: 'debug' }, 'info')
  const b = await inject(quiet.app, '/rt', sign(quiet.app, 'b'))
  b.ws.close()
  await until(() => quiet.app.realtime.connections().length === 0)
  await sleep(5)
  t.notOk(quiet.lines.some((l) => l.msg === OPEN || l.msg === CLOSED), 'debug lines under an info logger')

  const silent = await logged(t, { connectionLogLevel: 'silent' }, 'trace')
  const c = await inject(silent.app, '/rt', sign(silent.app, 'c'))
  c.ws.close()
  await until(() => silent.app.realtime.connections().length === 0)
  await sleep(5)
  t.notOk(silent.lines.some((l) => l.msg === OPEN || l.msg === CLOSED), 'silent: neither line')

  const warn = await logged(t, { connectionLogLevel: 'warn' }, 'info')
  const d = await inject(warn.app, '/rt', sign(warn.app, 'd'))
  d.ws.close()
  await until(() => warn.lines.some((l) => l.msg === CLOSED))
  t.same(warn.lines.filter((l) => l.msg === OPEN || l.msg === CLOSED).map((l) => l.level), [40, 40])
})

t.test('app.close(): the close line carries the 1001 the server sent', async (t) => {
  const { app, lines } = await logged(t)
  const a = await inject(app, '/rt', sign(app, 'a'))
  await app.close()
  t.not(a.ws.readyState, 1)
  t.same(lines.filter((l) => l.msg === OPEN || l.msg === CLOSED).map((l) => [l.msg, l.code]), [[OPEN, undefined], [CLOSED, 1001]], 'the shutdown close: 1001')
})

t.test('a logger that cannot tell its level (no isLevelEnabled) still gets both lines', async (t) => {
  const written: string[] = []
  const record = (_obj: unknown, msg?: string): void => { if (msg !== undefined) written.push(msg) }
  const plain: any = { fatal: record, error: record, warn: record, info: record, debug: record, trace: record, level: 'info' }
  plain.child = () => plain
  const app = Fastify({ loggerInstance: plain })
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(realtime, { heartbeat: false, routes: [{ path: '/rt' }] })
  await app.ready()
  const ws = await inject(app, '/rt', sign(app, 'plain'))
  await until(() => written.includes(OPEN))
  ws.ws.terminate()
  await until(() => written.includes(CLOSED))
  t.equal(written.filter((m) => m === OPEN).length, 1, 'one open line')
  t.equal(written.filter((m) => m === CLOSED).length, 1, 'one closed line')
})
