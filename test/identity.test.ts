// Identity, expiry and rights, made strict (issue 11, server items 1 to 3):
// `sub` and `exp` come from the verified token itself, whatever @fastify/jwt's
// `decode`, `verify` or `formatUser` make of it; a refresh never switches users
// and re-checks every room; a room left by server code is announced.
import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt, { type FastifyJWTOptions } from '@fastify/jwt'
import type WebSocket from 'ws'
import realtime, { type RealtimeOptions } from '../lib/index.js'
import { SECRET, bearer, closed, inject, sleep, only } from './helpers.js'
import { within } from './helpers/wait.js'
import { settle } from './protocol-helpers.js'

const seconds = (): number => Math.floor(Date.now() / 1000)

/** An app whose @fastify/jwt has `jwtOptions` on top of the secret. */
async function appWith (t: { after: (fn: () => unknown) => void }, jwtOptions: Partial<FastifyJWTOptions>, opts: RealtimeOptions = {}): Promise<FastifyInstance> {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET, ...jwtOptions } as FastifyJWTOptions)
  await app.register(realtime, { heartbeat: false, closeGracePeriod: 0, rateLimit: { max: 100_000 }, routes: [{ path: '/rt' }], ...opts })
  await app.ready()
  return app
}

function signed (app: FastifyInstance, claims: Record<string, unknown>): string {
  return (app as any).jwt.sign(claims)
}

// Item 1: with `decode: { complete: true }` (as @fastify/jwt's JWKS example has it),
// `app.jwt.decode` answers `{ header, payload }`: an expiry read there was lost.
for (const [name, jwtOptions] of [
  ['decode: { complete: true }', { decode: { complete: true } }],
  ['verify: { complete: true }', { verify: { complete: true } }]
] as Array<[string, Partial<FastifyJWTOptions>]>) {
  t.test(`a token's expiry closes its connection with 4401 under @fastify/jwt's ${name}`, async (t) => {
    const app = await appWith(t, jwtOptions)
    const token = signed(app, { sub: 'alice', exp: seconds() + 2 })
    if (name.startsWith('decode')) t.ok('header' in (app as any).jwt.decode(token), 'the option is in effect: decode answers { header, payload }')
    const ws = await app.injectWS('/rt', bearer(token))
    t.equal(only(app).sub, 'alice', 'sub is still the token\'s')
    const start = Date.now()
    const { code, reason } = await within(closed(ws), 4000, 'the expiry close')
    t.equal(code, 4401)
    t.equal(reason, 'token expired')
    t.ok(Date.now() - start <= 3000, `closed ${Date.now() - start} ms after the upgrade (the token had at most 2 s left)`)
  })
}

t.test('a refresh under decode: { complete: true } re-arms the expiry from the fresh token', async (t) => {
  const app = await appWith(t, { decode: { complete: true } })
  const inbox = await inject(app, '/rt', signed(app, { sub: 'alice', exp: seconds() + 2 }))
  const fresh = signed(app, { sub: 'alice', exp: seconds() + 3600 })
  t.same(await inbox.request({ type: 'auth', data: { token: fresh }, id: 'r' }), { type: 'ack', id: 'r' })
  await sleep(2500)
  t.ok(only(app).open, 'still open past the first token\'s expiry')
  inbox.ws.terminate()
})

// Item 2: a numeric `sub` keys the user like its decimal string.
t.test('{ sub: 42 }: conn.sub is "42", maxConnectionsPerUser applies and sendToUser("42") reaches it', async (t) => {
  const app = await appWith(t, {}, { maxConnectionsPerUser: 1 })
  const token = signed(app, { sub: 42 })
  const first = await inject(app, '/rt', token)
  t.equal(only(app).sub, '42')
  t.equal(only(app).user.sub, 42, 'conn.user is the payload as verified')
  await t.rejects(app.injectWS('/rt', bearer(signed(app, { sub: 42 }))), { message: 'Unexpected server response: 429' }, 'a second connection of user 42 is refused')
  await t.rejects(app.injectWS('/rt', bearer(signed(app, { sub: '42' }))), { message: 'Unexpected server response: 429' }, 'and so is "42" as a string: one user')
  app.realtime.sendToUser('42', 'hello', { n: 1 })
  t.same(await first.type('hello'), { type: 'hello', data: { n: 1 } })
  first.ws.terminate()
})

t.test('a sub that is neither a string nor a finite number is no identity: 401 when auth is required, anonymous otherwise', async (t) => {
  const app = await appWith(t, {})
  for (const sub of [{ id: 1 }, ['a'], true, null]) {
    await t.rejects(app.injectWS('/rt', bearer(signed(app, { sub }))), { message: 'Unexpected server response: 401' }, `sub ${JSON.stringify(sub)}`)
  }
  await t.rejects(app.injectWS('/rt', bearer(signed(app, { name: 'no sub' }))), { message: 'Unexpected server response: 401' }, 'no sub')

  const open = await appWith(t, {}, { auth: { required: false } })
  const ws = await open.injectWS('/rt', bearer(signed(open, { sub: { id: 1 } })))
  t.equal(only(open).sub, null, 'anonymous where auth is optional')
  ws.terminate()
})

// Item 2: a formatUser that renames `sub` must not turn off the per-user rules.
t.test('a formatUser that renames sub: limits and sendToUser key on the token\'s sub; a refresh never switches users', async (t) => {
  const closes: Array<{ sub: string | null, user: unknown, code: number }> = []
  const app = await appWith(t, { formatUser: (payload: any) => ({ id: payload.sub, name: `user ${String(payload.sub)}` }) } as any, {
    maxConnectionsPerUser: 1,
    routes: [{ path: '/rt', onClose: (conn, code) => { closes.push({ sub: conn.sub, user: conn.user, code }) } }]
  })
  const alice = await inject(app, '/rt', signed(app, { sub: 'alice' }))
  const conn = only(app)
  t.equal(conn.sub, 'alice')
  t.same(conn.user, { id: 'alice', name: 'user alice' }, 'conn.user is what formatUser made')
  await t.rejects(app.injectWS('/rt', bearer(signed(app, { sub: 'alice' }))), { message: 'Unexpected server response: 429' }, 'the per-user limit applies')
  const bob = await inject(app, '/rt', signed(app, { sub: 'bob' }))
  app.realtime.sendToUser('alice', 'for.alice')
  app.realtime.sendToUser('bob', 'for.bob')
  t.same(await alice.type('for.alice'), { type: 'for.alice' })
  t.same(await bob.type('for.bob'), { type: 'for.bob' })
  t.notOk(alice.messages.some((m) => m.type === 'for.bob'), 'alice got nothing of bob\'s')

  await conn.join('alice:private')
  t.same(await alice.request({ type: 'auth', data: { token: signed(app, { sub: 'alice' }) }, id: 'same' }), { type: 'ack', id: 'same' }, 'a refresh for the same user is acked')
  alice.send({ type: 'auth', data: { token: signed(app, { sub: 'bob' }) }, id: 'switch' })
  t.same(await within(closed(alice.ws), 2000, 'the 4401 close'), { code: 4401, reason: 'invalid token' }, 'another user\'s token closes the connection')
  t.same(closes, [{ sub: 'alice', user: { id: 'alice', name: 'user alice' }, code: 4401 }], 'it was alice\'s connection to the end')
  t.same(app.realtime.rooms(), [], 'and it left alice\'s room')
  t.equal(app.realtime.connections().length, 1, 'bob\'s connection is untouched')
  bob.ws.terminate()
})

// Item 3: rights are re-checked on every refresh.
t.test('a refresh whose claims no longer pass canJoin leaves those rooms: kicked FORBIDDEN, no more broadcasts from them', async (t) => {
  const app = await appWith(t, {}, {
    routes: [{ path: '/rt', canJoin: (conn, room) => (conn.user as any).rooms.includes(room) }]
  })
  const token = (rooms: string[]): string => signed(app, { sub: 'alice', rooms })
  const alice = await inject(app, '/rt', token(['a', 'b', 'c']))
  for (const room of ['a', 'b', 'c']) t.same(await alice.request({ type: 'join', room, id: room }), { type: 'ack', id: room, data: { room } })
  t.match(await alice.request({ type: 'join', room: 'd', id: 'd' }), { type: 'error', code: 'FORBIDDEN' })

  const from = alice.messages.length
  t.same(await alice.request({ type: 'auth', data: { token: token(['a']) }, id: 'r' }), { type: 'ack', id: 'r' })
  const kicks = alice.messages.slice(from).filter((m) => m.type === 'kicked')
  t.same(kicks.sort((x, y) => x.room.localeCompare(y.room)), [
    { type: 'kicked', room: 'b', data: { code: 'FORBIDDEN' } },
    { type: 'kicked', room: 'c', data: { code: 'FORBIDDEN' } }
  ], 'told of each room it lost, before the ack')
  t.same([...only(app).rooms], ['a'])
  t.same(app.realtime.rooms(), ['a'], 'the rooms it lost are gone from the server')

  app.realtime.broadcast('b', 'news', { room: 'b' })
  app.realtime.broadcast('a', 'news', { room: 'a' })
  t.same((await settle(alice)).filter((m) => m.type === 'news'), [{ type: 'news', room: 'a', data: { room: 'a' } }], 'only the room it kept still reaches it')
  t.match(await alice.request({ type: 'join', room: 'b', id: 'again' }), { type: 'error', code: 'FORBIDDEN' }, 'and it cannot join back')
  alice.ws.terminate()
})

t.test('a refresh whose canJoin throws for a room leaves that room (logged), the others stay', async (t) => {
  const app = await appWith(t, {}, {
    routes: [{
      path: '/rt',
      canJoin: (conn, room) => {
        if ((conn.user as any).broken === true && room === 'b') throw new Error('lookup failed')
        return true
      }
    }]
  })
  const alice = await inject(app, '/rt', signed(app, { sub: 'alice' }))
  await alice.request({ type: 'join', room: 'a', id: 1 })
  await alice.request({ type: 'join', room: 'b', id: 2 })
  t.same(await alice.request({ type: 'auth', data: { token: signed(app, { sub: 'alice', broken: true }) }, id: 3 }), { type: 'ack', id: 3 })
  t.same(alice.messages.filter((m) => m.type === 'kicked'), [{ type: 'kicked', room: 'b', data: { code: 'FORBIDDEN' } }])
  t.same([...only(app).rooms], ['a'])
  alice.ws.terminate()
})

t.test('conn.leave from server code tells the client: kicked LEFT, and no broadcast of that room follows', async (t) => {
  const app = await appWith(t, {})
  const alice = await inject(app, '/rt', signed(app, { sub: 'alice' }))
  await alice.request({ type: 'join', room: 'lobby', id: 1 })
  await only(app).leave('lobby')
  app.realtime.broadcast('lobby', 'news')
  t.same(await settle(alice), [{ type: 'kicked', room: 'lobby', data: { code: 'LEFT' } }])
  await only(app).leave('lobby')
  t.same(await settle(alice), [], 'leaving a room it is not in says nothing')
  alice.ws.terminate()
})

t.test('an auth refresh with a bad token closes 4401 whatever the formatUser', async (t) => {
  const app = await appWith(t, { formatUser: (payload: any) => ({ id: payload.sub }) } as any)
  const cases: Array<[string, unknown]> = [
    ['a token without sub', signed(app, { name: 'x' })],
    ['an expired token', signed(app, { sub: 'alice', exp: seconds() - 10 })],
    ['no token', undefined]
  ]
  for (const [what, token] of cases) {
    const inbox = await inject(app, '/rt', signed(app, { sub: 'alice' }))
    inbox.send({ type: 'auth', data: { token }, id: 1 })
    t.same(await within(closed(inbox.ws as WebSocket), 2000, what), { code: 4401, reason: 'invalid token' }, what)
  }
})
