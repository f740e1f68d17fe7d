// Handshake abuse over raw TCP: every bad token is a 401 JSON answer (never an
// upgrade, never a 500), spoofed Origins get 403, malformed upgrades get 400,
// slow handshakes are dropped within the server's timeouts, and a flood of
// upgrades past maxConnections gets 503s without leaking a socket or a slot.
import { createHmac, generateKeyPairSync, sign as rsaSign } from 'node:crypto'
import { promisify } from 'node:util'
import t from 'tap'
import type { Server } from 'node:http'
import Fastify, { type FastifyHttpOptions, type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import realtime, { type RealtimeOptions } from '../../lib/index.js'
import { SECRET, hub } from '../helpers.js'
import { type RawSocket, rawConnect, rawUpgrade } from './wire.js'
import { eventually } from '../helpers/wait.js'

const b64 = (value: unknown): string => Buffer.from(typeof value === 'string' ? value : JSON.stringify(value)).toString('base64url')

/** A JWT built by hand, so that the test controls every byte of it. */
function hmacJwt (payload: Record<string, unknown>, { alg = 'HS256', key = SECRET }: { alg?: string, key?: string } = {}): string {
  const head = b64({ alg, typ: 'JWT' }) + '.' + b64(payload)
  const hash = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' }[alg] ?? 'sha256'
  return head + '.' + createHmac(hash, key).update(head).digest('base64url')
}

const now = (): number => Math.floor(Date.now() / 1000)

/** An app whose @fastify/jwt pins HS256, as a careful user would. */
async function pinnedApp (t: { after: (fn: () => unknown) => void }, opts: RealtimeOptions = {}, server: FastifyHttpOptions<Server> = {}): Promise<{ app: FastifyInstance, port: number }> {
  const app = Fastify(server)
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET, verify: { algorithms: ['HS256'] } })
  await app.register(realtime, { heartbeat: false, ...opts, routes: [{ path: '/ws', messages: {} }] })
  await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, port: (app.server.address() as { port: number }).port }
}

/** Wait for the whole HTTP answer (status line and body). */
async function answered (raw: RawSocket): Promise<RawSocket> {
  await raw.until(() => raw.answer !== undefined && (raw.answer.status === 101 || raw.answer.body.length >= Number(raw.answer.headers['content-length'] ?? 0)), 3000)
  return raw
}

async function serverSockets (app: FastifyInstance): Promise<number> {
  return await promisify(app.server.getConnections.bind(app.server))()
}

t.test('every bad token is a 401 JSON answer, wherever the token is put', async (t) => {
  const { app, port } = await pinnedApp(t)
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 })
  const rsHead = b64({ alg: 'RS256', typ: 'JWT' }) + '.' + b64({ sub: 'mallory' })
  const valid = hmacJwt({ sub: 'alice' })
  const [vh, vp] = valid.split('.')
  const bad: Record<string, string> = {
    garbled: 'not-a-jwt',
    'three garbled parts': 'abc.def.ghi',
    'alg none, no signature': b64({ alg: 'none', typ: 'JWT' }) + '.' + b64({ sub: 'mallory' }) + '.',
    'alg none with a signature': b64({ alg: 'none', typ: 'JWT' }) + '.' + b64({ sub: 'mallory' }) + '.' + valid.split('.')[2],
    'HS512 with the right secret (app pins HS256)': hmacJwt({ sub: 'mallory' }, { alg: 'HS512' }),
    'RS256 signed with a stranger key': rsHead + '.' + rsaSign('sha256', Buffer.from(rsHead), privateKey).toString('base64url'),
    'signed with another secret': hmacJwt({ sub: 'mallory' }, { key: 'another-secret-that-is-long-enough-too' }),
    'payload swapped under a valid signature': vh + '.' + b64({ sub: 'admin' }) + '.' + valid.split('.')[2],
    'signature truncated': valid.slice(0, -5),
    'no signature part': vh + '.' + vp,
    expired: hmacJwt({ sub: 'alice', exp: now() - 60 }),
    'not yet valid (nbf)': hmacJwt({ sub: 'alice', nbf: now() + 3600 }),
    'header is not JSON': b64('{{{') + '.' + vp + '.' + valid.split('.')[2],
    'huge token': 'a'.repeat(6000) + '.' + 'b'.repeat(6000) + '.c'
  }
  const places: Record<string, (token: string) => { path: string, headers: Record<string, string> }> = {
    'Authorization header': (token) => ({ path: '/ws', headers: { authorization: `Bearer ${token}` } }),
    'bearer subprotocol': (token) => ({ path: '/ws', headers: { 'sec-websocket-protocol': `bearer, ${token}` } }),
    'token query parameter': (token) => ({ path: `/ws?token=${encodeURIComponent(token)}`, headers: {} })
  }
  for (const [where, place] of Object.entries(places)) {
    const { path, headers } = place(valid)
    const ok = await answered(await rawConnect(port, path, { headers }))
    t.equal(ok.answer?.status, 101, `${where}: a valid token upgrades`)
    ok.destroy()
    for (const [name, token] of Object.entries(bad)) {
      const { path, headers } = place(token)
      const raw = await answered(await rawConnect(port, path, { headers }))
      const status = raw.answer?.status
      let body: any
      try {
        body = JSON.parse(raw.answer?.body ?? '')
      } catch {}
      t.ok(status === 401 && body?.statusCode === 401 && body.error === 'Unauthorized' && typeof body.message === 'string' && body.stack === undefined,
        `${where}, ${name}: 401 with a JSON error body (got ${status} ${raw.answer?.body.slice(0, 160)})`)
      raw.destroy()
    }
  }
  const missing = await answered(await rawConnect(port, '/ws'))
  t.equal(missing.answer?.status, 401, 'no token at all: 401')
  missing.destroy()
  t.ok(await eventually(() => hub(app).limits.active === 0 && app.realtime.stats().connections === 0), 'no refused handshake holds a connection slot')
  t.ok(await eventually(async () => await serverSockets(app) === 0), 'no refused handshake leaves a socket open')
})

t.test('spoofed Origins get 403 before anything else', async (t) => {
  const { app, port } = await pinnedApp(t)
  const token = hmacJwt({ sub: 'alice' })
  const host = `127.0.0.1:${port}`
  const cases: Array<[string | undefined, number]> = [
    [undefined, 101],
    [`http://${host}`, 101],
    ['http://evil.example', 403],
    [`http://${host}.evil.example`, 403],
    [`http://evil.example/${host}`, 403],
    [`http://127.0.0.1:${port + 1}`, 403],
    [`http://${host}@evil.example`, 403],
    [`http://evil.example#@${host}`, 403],
    ['null', 403],
    ['not a url', 403],
    ['', 403]
  ]
  for (const [origin, status] of cases) {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` }
    if (origin !== undefined) headers.origin = origin
    const raw = await answered(await rawConnect(port, '/ws', { headers }))
    t.equal(raw.answer?.status, status, `Origin ${JSON.stringify(origin)}: ${status}`)
    if (status === 403) t.match(JSON.parse(raw.answer?.body ?? '{}'), { statusCode: 403, error: 'Forbidden' }, 'with a JSON error body')
    raw.destroy()
  }
  // a forbidden Origin is refused even without a token: no token verification is spent on it
  const noToken = await answered(await rawConnect(port, '/ws', { headers: { origin: 'http://evil.example' } }))
  t.equal(noToken.answer?.status, 403, 'forbidden Origin without a token: 403, not 401')
  noToken.destroy()
  t.ok(await eventually(() => hub(app).limits.active === 0), 'no slot held')

  const listed = await pinnedApp(t, { allowedOrigins: ['https://app.example'] })
  for (const [origin, status] of [['https://app.example', 101], ['https://app.example.evil', 403], ['http://app.example', 403], ['https://APP.example.evil', 403]] as const) {
    const raw = await answered(await rawConnect(listed.port, '/ws', { headers: { authorization: `Bearer ${token}`, origin } }))
    t.equal(raw.answer?.status, status, `allowedOrigins list, Origin ${origin}: ${status}`)
    raw.destroy()
  }
})

t.test('malformed upgrade requests get 400 and hold no slot', async (t) => {
  const { app, port } = await pinnedApp(t, { maxConnections: 2 })
  const token = hmacJwt({ sub: 'alice' })
  const cases: Record<string, Record<string, string>> = {
    'short Sec-WebSocket-Key': { 'sec-websocket-key': 'c2hvcnQ=' },
    'Sec-WebSocket-Key not base64 of 16 bytes': { 'sec-websocket-key': 'this is not a key at all!!' },
    'empty Sec-WebSocket-Key': { 'sec-websocket-key': '' },
    'Sec-WebSocket-Version 12': { 'sec-websocket-version': '12' },
    'Sec-WebSocket-Version garbage': { 'sec-websocket-version': 'thirteen' },
    'Upgrade: h2c': { upgrade: 'h2c' }
  }
  // each case twice: more bad upgrades than maxConnections, so a leaked slot would show
  for (const round of [1, 2]) {
    for (const [name, headers] of Object.entries(cases)) {
      const raw = await answered(await rawConnect(port, '/ws', { headers: { authorization: `Bearer ${token}`, ...headers } }))
      t.equal(raw.answer?.status, 400, `${name} (round ${round}): 400`)
      raw.destroy()
    }
  }
  t.ok(await eventually(() => hub(app).limits.active === 0), 'no slot held by a 400')
  const a = await answered(await rawConnect(port, '/ws', { headers: { authorization: `Bearer ${token}` } }))
  const b = await answered(await rawConnect(port, '/ws', { headers: { authorization: `Bearer ${token}` } }))
  t.same([a.answer?.status, b.answer?.status], [101, 101], 'maxConnections good upgrades still fit after the bad ones')
  a.destroy()
  b.destroy()
  t.ok(await eventually(async () => await serverSockets(app) === 0), 'every socket closed')
})

t.test('slow handshakes are dropped within the timeouts the app sets; live sockets are not', async (t) => {
  // What a user should set: Fastify's connectionTimeout (idle socket), requestTimeout, and
  // node's headersTimeout with a connectionsCheckingInterval short enough to enforce it.
  const { app, port } = await pinnedApp(t, {}, {
    connectionTimeout: 400,
    requestTimeout: 1000,
    http: { headersTimeout: 500, connectionsCheckingInterval: 100 }
  })
  const token = hmacJwt({ sub: 'alice' })

  let started = Date.now()
  const silent = await rawUpgrade(port, '/ws', { head: `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\n` })
  await Promise.race([silent.ended, new Promise((resolve) => setTimeout(resolve, 3000))])
  const silentMs = Date.now() - started
  t.ok(silent.destroyed && silentMs < 1500, `partial headers then silence: dropped after ${silentMs} ms`)

  started = Date.now()
  const slowloris = await rawUpgrade(port, '/ws', { head: `GET /ws HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n` })
  let n = 0
  const drip = setInterval(() => slowloris.write(`X-Drip-${n++}: a\r\n`), 100)
  await Promise.race([slowloris.ended, new Promise((resolve) => setTimeout(resolve, 4000))])
  clearInterval(drip)
  const lorisMs = Date.now() - started
  t.ok(slowloris.destroyed && lorisMs < 2000, `a header every 100 ms (slowloris): dropped after ${lorisMs} ms, answered ${slowloris.answer?.status}`)

  const live = await answered(await rawConnect(port, '/ws', { headers: { authorization: `Bearer ${token}` } }))
  t.equal(live.answer?.status, 101)
  await new Promise((resolve) => setTimeout(resolve, 1600))
  live.sendText('{"type":"ping"}')
  t.ok(await live.until(() => live.texts.includes('{"type":"pong"}')), 'an idle WebSocket outlives connectionTimeout, requestTimeout and headersTimeout')
  live.destroy()
  t.ok(await eventually(async () => await serverSockets(app) === 0 && hub(app).limits.active === 0), 'nothing left behind')
})

t.test('without those settings the server still drops a slow handshake, only late', async (t) => {
  const { app } = await pinnedApp(t)
  // node's default headersTimeout (60 s) bounds it; this documents the default rather than waiting for it
  t.ok(app.server.headersTimeout > 0 && app.server.headersTimeout <= 60_000, `node headersTimeout is ${app.server.headersTimeout} ms`)
})

t.test('a flood of upgrades past maxConnections: 503s, then every socket and slot released', async (t) => {
  const MAX = 20
  const { app, port } = await pinnedApp(t, { maxConnections: MAX, maxConnectionsPerUser: 3 })
  const flood = await Promise.all(Array.from({ length: 80 }, async (_, i) =>
    await answered(await rawConnect(port, '/ws', { headers: { authorization: `Bearer ${hmacJwt({ sub: `user${i}` })}` } }))))
  const statuses = flood.map((raw) => raw.answer?.status)
  t.equal(statuses.filter((s) => s === 101).length, MAX, `exactly ${MAX} upgrades accepted`)
  t.equal(statuses.filter((s) => s === 503).length, 80 - MAX, 'every other one refused with 503')
  t.ok(flood.filter((raw) => raw.answer?.status === 503).every((raw) => Number(raw.answer?.headers['retry-after']) > 0), 'each 503 carries Retry-After')
  t.ok(await eventually(async () => await serverSockets(app) === MAX), `the refused sockets are closed by the server (${await serverSockets(app)} open)`)
  t.equal(app.realtime.stats().connections, MAX, 'stats() counts the accepted ones')
  t.equal(hub(app).limits.active, MAX, 'and holds exactly their slots')

  // a second wave with bad tokens while full: 503 first (capacity is checked before the token)
  const bad = await answered(await rawConnect(port, '/ws', { headers: { authorization: 'Bearer nope' } }))
  t.equal(bad.answer?.status, 503, 'while full, even a bad token gets 503')
  bad.destroy()

  for (const raw of flood) raw.destroy()
  t.ok(await eventually(async () => await serverSockets(app) === 0), 'all sockets gone once the clients leave')
  t.ok(await eventually(() => app.realtime.stats().connections === 0 && hub(app).limits.active === 0), 'no connection or slot leaked')

  const again = await Promise.all(Array.from({ length: MAX }, async (_, i) =>
    await answered(await rawConnect(port, '/ws', { headers: { authorization: `Bearer ${hmacJwt({ sub: `again${i}` })}` } }))))
  t.ok(again.every((raw) => raw.answer?.status === 101), 'the full capacity is available again')
  for (const raw of again) raw.destroy()
  t.ok(await eventually(() => app.realtime.stats().connections === 0), 'they left')

  // the per-user limit
  const token = hmacJwt({ sub: 'greedy' })
  const mine = []
  for (let i = 0; i < 4; i++) mine.push(await answered(await rawConnect(port, '/ws', { headers: { authorization: `Bearer ${token}` } })))
  t.same(mine.map((raw) => raw.answer?.status), [101, 101, 101, 429], 'the fourth connection of one user gets 429')
  mine[0].destroy()
  t.ok(await eventually(() => app.realtime.stats().connections === 2), 'one of them left')
  const fourth = await answered(await rawConnect(port, '/ws', { headers: { authorization: `Bearer ${token}` } }))
  t.equal(fourth.answer?.status, 101, 'after one leaves, the user may connect again')
  for (const raw of [...mine, fourth]) raw.destroy()
  t.ok(await eventually(async () => await serverSockets(app) === 0 && hub(app).limits.active === 0), 'nothing left behind')
})
