import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import type WebSocket from 'ws'
import realtime from '../lib/index.js'
import { findToken, protocolToken, subOf } from '../lib/auth.js'
import { SECRET, build, connect, listen, sign, hub } from './helpers.js'
import { algNone, hs256, refusal, until } from './support/upgrade.js'

const ROUTES = [{ path: '/rt' }]
const seconds = (): number => Math.floor(Date.now() / 1000)

/** Close a client and wait until the server has let go of every connection. */
async function hangUp (app: FastifyInstance, ws: WebSocket): Promise<void> {
  ws.terminate()
  await until(() => app.realtime.connections().length === 0)
}

/** The one open connection's user, after a client got in. */
function onlyUser (app: FastifyInstance): unknown {
  const open = app.realtime.connections()
  if (open.length !== 1) throw new Error(`expected one connection, found ${open.length}`)
  return open[0].user
}

t.test('a token is read from Authorization: Bearer', async (t) => {
  const app = await build(t, { routes: ROUTES })
  await app.ready()
  const token = sign(app, 'alice', { role: 'admin' })
  const injected = await app.injectWS('/rt', { headers: { authorization: `Bearer ${token}` } })
  t.match(onlyUser(app), { sub: 'alice', role: 'admin' }, 'injectWS: conn.user is the verified payload')
  await hangUp(app, injected)

  const url = await listen(app)
  const lower = await connect(`${url}/rt`, { headers: { authorization: `bearer ${sign(app, 'bob')}` } })
  t.match(app.realtime.connections().map((c) => c.user.sub), ['bob'], 'real port: the scheme is case-insensitive')
  t.equal(lower.ws.protocol, '', 'no subprotocol is answered when none was offered')
  await hangUp(app, lower.ws)
})

t.test('a token is read from the bearer subprotocol pair and the server answers "bearer"', async (t) => {
  const app = await build(t, { routes: ROUTES })
  await app.ready()
  const url = await listen(app)
  const client = await connect(`${url}/rt`, {}, ['bearer', sign(app, 'carol')])
  t.equal(client.ws.protocol, 'bearer')
  t.match(onlyUser(app), { sub: 'carol' })
  await hangUp(app, client.ws)

  const injected = await app.injectWS('/rt', { headers: { 'sec-websocket-protocol': `chat, bearer, ${sign(app, 'dave')}` } })
  t.match(app.realtime.connections().map((c) => c.user.sub), ['dave'], 'injectWS: the pair may follow other subprotocols')
  await hangUp(app, injected)
})

t.test('a token is read from the token query parameter', async (t) => {
  const app = await build(t, { routes: ROUTES })
  await app.ready()
  const injected = await app.injectWS(`/rt?token=${sign(app, 'erin')}`)
  t.match(onlyUser(app), { sub: 'erin' }, 'injectWS')
  await hangUp(app, injected)

  const url = await listen(app)
  const client = await connect(`${url}/rt?other=1&token=${sign(app, 'frank')}`)
  t.match(app.realtime.connections().map((c) => c.user.sub), ['frank'], 'real port')
  await hangUp(app, client.ws)
})

t.test('Authorization beats the subprotocol, which beats the query; a bad header token does not fall back', async (t) => {
  const app = await build(t, { routes: ROUTES })
  await app.ready()
  const url = await listen(app)
  const header = sign(app, 'from-header')
  const protocol = sign(app, 'from-protocol')
  const query = sign(app, 'from-query')

  const all = await connect(`${url}/rt?token=${query}`, { headers: { authorization: `Bearer ${header}` } }, ['bearer', protocol])
  t.match(onlyUser(app), { sub: 'from-header' })
  await hangUp(app, all.ws)
  await app.injectWS(`/rt?token=${query}`, { headers: { 'sec-websocket-protocol': `bearer, ${protocol}` } }).then((ws) => {
    t.match(onlyUser(app), { sub: 'from-protocol' })
    return hangUp(app, ws)
  })

  const refused = await refusal(`${url}/rt?token=${query}`, { headers: { authorization: 'Bearer garbage' } })
  t.equal(refused.statusCode, 401, 'a present but invalid header token is not replaced by the query one')
  // a header that is not a Bearer one is no token: the next source is read
  const basic = await connect(`${url}/rt?token=${query}`, { headers: { authorization: 'Basic dXNlcjpwYXNz' } })
  t.match(app.realtime.connections().map((c) => c.user.sub), ['from-query'])
  await hangUp(app, basic.ws)
})

t.test('auth.extractToken overrides where the token is read', async (t) => {
  const app = await build(t, {
    routes: ROUTES,
    auth: { extractToken: (request) => request.headers['x-token'] as string | undefined }
  })
  await app.ready()
  const ws = await app.injectWS('/rt', { headers: { 'x-token': sign(app, 'gina') } })
  t.match(onlyUser(app), { sub: 'gina' })
  await hangUp(app, ws)
  await t.rejects(app.injectWS('/rt', { headers: { authorization: `Bearer ${sign(app, 'gina')}` } }), { message: 'Unexpected server response: 401' },
    'the usual places are not read when extractToken is given')
  await t.rejects(app.injectWS('/rt', { headers: { 'x-token': '' } }), { message: 'Unexpected server response: 401' }, 'an empty string is no token')

  const url = await listen(app)
  const refused = await refusal(`${url}/rt`, { headers: { 'x-token': 'not-a-jwt' } })
  t.equal(refused.statusCode, 401)
  t.equal(refused.body.code, 'FST_JWT_AUTHORIZATION_TOKEN_INVALID')
})

t.test('the token found is the one verified, whatever @fastify/jwt itself is set to read', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  // the app's HTTP routes read a custom header; the handshake still reads Authorization
  await app.register(jwt, { secret: SECRET, verify: { extractToken: (request) => request.headers['x-http-token'] as string } })
  await app.register(realtime, { routes: ROUTES })
  await app.ready()
  const ws = await app.injectWS('/rt', { headers: { authorization: `Bearer ${sign(app, 'hank')}`, 'x-http-token': sign(app, 'someone-else') } })
  t.match(onlyUser(app), { sub: 'hank' })
  await hangUp(app, ws)
})

/** Each bad credential, the error code Fastify's 401 body carries. */
function badCredentials (app: FastifyInstance): Array<{ name: string, authorization?: string, token?: string, code: string }> {
  return [
    { name: 'no token', code: 'FST_REALTIME_UNAUTHORIZED' },
    { name: 'Bearer with no token', authorization: 'Bearer', code: 'FST_REALTIME_UNAUTHORIZED' },
    { name: 'Bearer and blanks', authorization: 'Bearer    ', code: 'FST_REALTIME_UNAUTHORIZED' },
    { name: 'garbage', token: 'garbage', code: 'FST_JWT_AUTHORIZATION_TOKEN_INVALID' },
    { name: 'three dots of nothing', token: 'a.b.c', code: 'FST_JWT_AUTHORIZATION_TOKEN_INVALID' },
    { name: 'expired', token: sign(app, 'x', { exp: seconds() - 60 }), code: 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' },
    { name: 'not yet valid (nbf)', token: sign(app, 'x', { nbf: seconds() + 600 }), code: 'FST_REALTIME_UNAUTHORIZED' },
    { name: 'signed with another secret', token: hs256({ sub: 'x', iat: seconds() }, 'another-secret-that-is-long-enough-too'), code: 'FST_JWT_AUTHORIZATION_TOKEN_INVALID' },
    { name: 'alg none', token: algNone({ sub: 'x', iat: seconds() }), code: 'FAST_JWT_MISSING_SIGNATURE' }
  ]
}

t.test('missing, malformed, expired, not yet valid, wrongly signed and alg:none tokens get 401 with no upgrade', async (t) => {
  const app = await build(t, { routes: ROUTES, maxConnections: 1 })
  await app.ready()
  const url = await listen(app)
  for (const bad of badCredentials(app)) {
    const authorization = bad.authorization ?? (bad.token === undefined ? undefined : `Bearer ${bad.token}`)
    const headers: Record<string, string> = authorization === undefined ? {} : { authorization }

    await t.rejects(app.injectWS('/rt', { headers }), { message: 'Unexpected server response: 401' }, `${bad.name}: injectWS`)

    const refused = await refusal(`${url}/rt`, { headers })
    t.equal(refused.statusCode, 401, `${bad.name}: real port status`)
    t.same(Object.keys(refused.body).sort(), ['code', 'error', 'message', 'statusCode'], `${bad.name}: Fastify's JSON error body`)
    t.match(refused.body, { statusCode: 401, error: 'Unauthorized', code: bad.code, message: String }, bad.name)
    t.match(refused.headers['content-type'], /^application\/json/)
    t.notOk(refused.headers.upgrade, `${bad.name}: no upgrade header`)

    if (bad.token !== undefined) {
      const viaQuery = await refusal(`${url}/rt?token=${encodeURIComponent(bad.token)}`)
      t.match(viaQuery, { statusCode: 401, body: { code: bad.code } }, `${bad.name}: in the query`)
      const viaProtocol = await refusal(`${url}/rt`, {}, ['bearer', bad.token])
      t.match(viaProtocol, { statusCode: 401, body: { code: bad.code } }, `${bad.name}: in the subprotocol`)
    }
  }
  t.equal(app.realtime.connections().length, 0, 'nobody got in')
  t.equal(hub(app).limits.active, 0, 'every refused handshake gave its slot back')
  const good = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'ok')}` } })
  t.equal(good.ws.readyState, 1, 'with maxConnections 1, a good token still gets in after all those refusals')
  await hangUp(app, good.ws)
})

t.test('@fastify/jwt checks apply: trusted() refusing is 401, trusted() failing is a 500, formatUser shapes conn.user', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, {
    secret: SECRET,
    trusted: async (_request: unknown, decoded: any) => {
      if (decoded.sub === 'broken') throw new Error('revocation store is down')
      return decoded.sub !== 'revoked'
    },
    formatUser: (payload: any) => payload.sub === 'nobody' ? undefined as any : { sub: payload.sub, name: `user ${payload.sub}` }
  })
  await app.register(realtime, { routes: ROUTES })
  const url = await listen(app)
  t.match(await refusal(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'revoked')}` } }),
    { statusCode: 401, body: { code: 'FST_JWT_AUTHORIZATION_TOKEN_UNTRUSTED' } })
  t.match(await refusal(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'broken')}` } }),
    { statusCode: 500 }, 'a server fault is not dressed up as a token problem')
  t.equal(hub(app).limits.active, 0)

  const ws = await app.injectWS('/rt', { headers: { authorization: `Bearer ${sign(app, 'ivy')}` } })
  t.same(onlyUser(app), { sub: 'ivy', name: 'user ivy' })
  await hangUp(app, ws)
  const nobody = await app.injectWS('/rt', { headers: { authorization: `Bearer ${sign(app, 'nobody')}` } })
  t.same(app.realtime.connections().map((c) => c.user), [{}], 'a formatUser that returns nothing still makes an authenticated (not anonymous) user')
  await hangUp(app, nobody)
})

t.test('auth.required false: anonymous clients get in with conn.user null; a bad token is still 401', async (t) => {
  const app = await build(t, { routes: ROUTES, auth: { required: false } })
  await app.ready()
  const anonymous = await app.injectWS('/rt')
  const [conn] = app.realtime.connections()
  t.equal(conn.user, null)
  t.equal(conn.sub, null)
  await hangUp(app, anonymous)

  const named = await app.injectWS('/rt', { headers: { authorization: `Bearer ${sign(app, 'jo')}` } })
  t.match(onlyUser(app), { sub: 'jo' }, 'a good token still identifies the client')
  await hangUp(app, named)

  await t.rejects(app.injectWS('/rt', { headers: { authorization: 'Bearer garbage' } }), { message: 'Unexpected server response: 401' })
  const url = await listen(app)
  t.match(await refusal(`${url}/rt?token=${sign(app, 'x', { exp: seconds() - 5 })}`), { statusCode: 401, body: { code: 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED' } })
  const real = await connect(`${url}/rt`)
  t.equal(onlyUser(app), null, 'real port, anonymous')
  await hangUp(app, real.ws)
})

t.test('registration fails with FST_REALTIME_JWT_MISSING when auth is required and @fastify/jwt is not registered', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await t.rejects(async () => { await app.register(realtime, { routes: ROUTES }) }, { code: 'FST_REALTIME_JWT_MISSING', message: /@fastify\/jwt/ })

  const explicit = Fastify()
  t.after(() => explicit.close())
  await t.rejects(async () => { await explicit.register(realtime, { auth: { required: true } }) }, { code: 'FST_REALTIME_JWT_MISSING' })
})

t.test('without @fastify/jwt and auth.required false, everyone is anonymous, even with a token', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(realtime, { routes: ROUTES, auth: { required: false } })
  await app.ready()
  const ws = await app.injectWS('/rt', { headers: { authorization: 'Bearer anything' } })
  t.equal(onlyUser(app), null)
  await hangUp(app, ws)
})

t.test('protocolToken reads the token after "bearer" in the offered list', async (t) => {
  t.equal(protocolToken('bearer, abc'), 'abc')
  t.equal(protocolToken('chat,bearer,abc,json'), 'abc')
  t.equal(protocolToken('bearer'), undefined, 'bearer with nothing after it')
  t.equal(protocolToken('bearer, '), undefined, 'an empty token')
  t.equal(protocolToken('chat, json'), undefined)
  t.equal(protocolToken('abc, bearer'), undefined, 'bearer must come first in the pair')
  t.equal(protocolToken(undefined), undefined)
  t.equal(protocolToken(['bearer', 'abc']), undefined, 'a repeated header is not guessed at')
})

t.test('findToken: sources and their order', async (t) => {
  const request = (headers: Record<string, string>, query: Record<string, unknown> = {}): any => ({ headers, query })
  t.same(findToken(request({ authorization: 'Bearer  h ' })), { token: 'h', source: 'header' })
  t.same(findToken(request({ authorization: 'Bearer a b' }, { token: 'q' })), { token: 'q', source: 'query' }, 'two words are no bearer token')
  t.same(findToken(request({ 'sec-websocket-protocol': 'bearer, p' }, { token: 'q' })), { token: 'p', source: 'protocol' })
  t.same(findToken(request({}, { token: 'q' })), { token: 'q', source: 'query' })
  t.equal(findToken(request({}, { token: ['a', 'b'] })), undefined, 'a repeated query parameter is no token')
  t.equal(findToken(request({}, { token: '' })), undefined)
  t.equal(findToken({ headers: {} } as any), undefined, 'no parsed query at all')
  t.same(findToken(request({ authorization: 'Bearer h' }), () => 'c'), { token: 'c', source: 'custom' })
  t.equal(findToken(request({ authorization: 'Bearer h' }), () => undefined), undefined)
  t.equal(findToken(request({}), () => 42 as any), undefined, 'a non-string from extractToken is no token')
})

t.test('subOf: a string sub as it is, a number as its decimal string, anything else none', async (t) => {
  t.equal(subOf({ sub: 'alice' }), 'alice')
  t.equal(subOf({ sub: 42 }), '42')
  t.equal(subOf({ sub: 1.5 }), '1.5')
  t.equal(subOf({ sub: Infinity }), null)
  t.equal(subOf({ sub: { id: 1 } }), null)
  t.equal(subOf({ sub: ['a'] }), null)
  t.equal(subOf({}), null)
})

t.test('the app\'s global verify options apply to upgrades: fast-jwt\'s cache on, and a claim check it makes', async (t) => {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET, verify: { cache: true, allowedIss: 'us' } })
  await app.register(realtime, { heartbeat: false, routes: [{ path: '/rt' }] })
  await app.ready()
  const token = (app as any).jwt.sign({ sub: 'cached', iss: 'us' })
  for (let i = 0; i < 3; i++) {
    const ws = await app.injectWS('/rt', { headers: { authorization: `Bearer ${token}` } })
    t.equal(ws.readyState, 1, `the same token, upgrade ${i + 1}: accepted`)
    ws.terminate()
  }
  const other = (app as any).jwt.sign({ sub: 'cached', iss: 'them' })
  const refused = await app.injectWS('/rt', { headers: { authorization: `Bearer ${other}` } }).then(() => 'open', (err: Error) => err.message)
  t.match(refused, /401/, 'a token from another issuer is refused: the global verify options are the ones used')
})
