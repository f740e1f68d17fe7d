// The token in logs (issue 11, server item 9): a JWT sent as `?token=` must not
// reach the log through requests that miss the realtime route (`/chat/`,
// `/Chat`, `//chat`, other routes). The plugin redacts what it can reach (its
// own routes, the not-found handling); the app's request log needs the
// exported `requestSerializer`, and the plugin warns once at startup when the
// app's logger would print the raw query.
import t from 'tap'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import jwt from '@fastify/jwt'
import { pino } from 'pino'
import realtime, { requestSerializer, type RealtimeOptions } from '../lib/index.js'
import { printsQueryToken } from '../lib/log.js'
import { SECRET, connect, listen, sign } from './helpers.js'
import { logCapture } from './protocol-helpers.js'
import { refusal, until } from './support/upgrade.js'

const WARNING = /^fastify-realtime: the app's logger writes request URLs as they are/

async function loggedApp (t: { after: (fn: () => unknown) => void }, server: FastifyServerOptions, opts: RealtimeOptions = {}): Promise<FastifyInstance> {
  const app = Fastify(server)
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(realtime, { heartbeat: false, closeGracePeriod: 0, routes: [{ path: '/chat' }], ...opts })
  app.get('/other', async () => ({ ok: true }))
  // a wildcard route that hands misses to the not-found handler, as @fastify/static does
  app.get('/assets/*', async (_request, reply) => { reply.callNotFound() })
  return app
}

/** Every way a client may miss the realtime route, or never aim at it, with a query token. */
async function knock (app: FastifyInstance, token: string): Promise<Array<{ url: string, status: number, body: string }>> {
  const base = await listen(app)
  const answers = []
  // (an upgrade to an HTTP route is @fastify/websocket's no-handler case, which logs its own `path`: see docs/auth.md)
  for (const path of ['/chat/', '/Chat', '//chat', '/chat/x', '/nowhere']) {
    const refused = await refusal(`${base}${path}?token=${token}`)
    answers.push({ url: `ws ${path}`, status: refused.statusCode, body: JSON.stringify(refused.body) })
  }
  for (const path of ['/other', '/chat/', '/nowhere', '/other?a=1&', '/assets/x']) {
    const res = await app.inject({ url: `${path}${path.includes('?') ? '' : '?'}token=${token}` })
    answers.push({ url: `http ${path}`, status: res.statusCode, body: res.body })
  }
  // the realtime route itself
  const ok = await connect(`${base}/chat?token=${token}`)
  ok.ws.close()
  await until(() => app.realtime.connections().length === 0)
  return answers
}

t.test('with requestSerializer in the app\'s logger, a query token is in no log line, whatever the path', async (t) => {
  const logs = logCapture()
  const app = await loggedApp(t, { logger: { level: 'trace', stream: logs.stream, serializers: { req: requestSerializer } } })
  const token = sign(app, 'alice')
  const answers = await knock(app, token)
  t.same(answers.map((a) => a.status), [404, 404, 404, 404, 404, 200, 404, 404, 200, 404], 'the answers Fastify gives')
  await app.close()

  const text = logs.text()
  t.notOk(text.includes(token), 'the token is in no log line')
  t.notOk(text.includes(token.split('.')[2]), 'nor its signature')
  t.notOk(logs.lines.some((l) => WARNING.test(l.msg)), 'no startup warning: the logger redacts')
  const incoming = logs.lines.filter((l) => l.msg === 'incoming request').map((l) => l.req.url)
  t.same(incoming, [
    '/chat/?token=[REDACTED]', '/Chat?token=[REDACTED]', '//chat?token=[REDACTED]', '/chat/x?token=[REDACTED]', '/nowhere?token=[REDACTED]',
    '/other?token=[REDACTED]', '/chat/?token=[REDACTED]', '/nowhere?token=[REDACTED]', '/other?a=1&token=[REDACTED]', '/assets/x?token=[REDACTED]',
    '/chat?token=[REDACTED]'
  ], 'every request is logged, its token redacted')
  t.ok(logs.lines.some((l) => l.msg === 'Route GET:/chat/?token=[REDACTED] not found'), 'Fastify\'s not-found line names the path, redacted')
  for (const answer of answers) t.notOk(answer.body.includes(token), `${answer.url}: the reply does not echo the token either`)
})

t.test('without it, the plugin warns once at startup; the not-found line is redacted all the same', async (t) => {
  const logs = logCapture()
  const app = await loggedApp(t, { logger: { level: 'info', stream: logs.stream } })
  await app.ready()
  const warnings = logs.lines.filter((l) => WARNING.test(l.msg))
  t.equal(warnings.length, 1, 'one warning')
  t.equal(warnings[0].level, 40, 'at warn level')
  t.match(warnings[0].msg, /serializers: \{ req: requestSerializer \}/, 'it says what to do')

  const token = sign(app, 'bob')
  await knock(app, token)
  await app.close()
  t.equal(logs.lines.filter((l) => WARNING.test(l.msg)).length, 1, 'still one warning after all that traffic')
  const notFound = logs.lines.filter((l) => /^Route GET:.* not found$/.test(l.msg))
  t.equal(notFound.length, 8, 'each miss logged its not-found line')
  t.notOk(notFound.some((l) => l.msg.includes(token)), 'none carries the token: the plugin reached those')
  t.ok(logs.lines.some((l) => l.msg === 'incoming request' && l.req.url.includes(token)),
    'the app\'s own request log does (only the logger\'s serializer can reach it): hence the warning')
  t.notOk(logs.lines.some((l) => l.msg === 'incoming request' && l.req.url.startsWith('/chat?') && l.req.url.includes(token)), 'the realtime route redacts its own')
})

t.test('the startup warning: only when the app\'s request log would print the raw query', async (t) => {
  const cases: Array<[string, FastifyServerOptions, RealtimeOptions, boolean]> = [
    ['Fastify\'s default serializer', { logger: { level: 'info' } }, {}, true],
    ['a custom serializer that prints the url', { logger: { level: 'debug', serializers: { req: (req: any) => ({ url: req.url }) } } }, {}, true],
    ['a pino instance passed as loggerInstance', { loggerInstance: pino({ level: 'info' }) as any }, {}, true],
    ['requestSerializer', { logger: { level: 'info', serializers: { req: requestSerializer } } }, {}, false],
    ['a custom serializer that leaves the url out', { logger: { level: 'info', serializers: { req: (req: any) => ({ method: req.method }) } } }, {}, false],
    ['a serializer that fails on the made-up request (cannot tell)', { logger: { level: 'info', serializers: { req: (req: any) => ({ url: req.raw.connection.encrypted }) } } }, {}, false],
    ['a level above info (no request lines)', { logger: { level: 'warn' } }, {}, false],
    ['disableRequestLogging', { logger: { level: 'info' }, disableRequestLogging: true }, {}, false],
    ['auth.extractToken (the plugin never reads ?token=)', { logger: { level: 'info' } }, { auth: { extractToken: () => undefined } }, false]
  ]
  for (const [what, server, opts, warns] of cases) {
    const logs = logCapture()
    const withStream = server.loggerInstance !== undefined
      ? { ...server, loggerInstance: pino({ level: 'info' }, logs.stream) as any }
      : { ...server, logger: { ...(server.logger as object), stream: logs.stream } }
    const app = await loggedApp(t, withStream, opts)
    await app.ready()
    t.equal(logs.lines.filter((l) => WARNING.test(l.msg)).length, warns ? 1 : 0, `${what}: ${warns ? 'one warning' : 'no warning'}`)
    await app.close()
  }
  // logger: false is no pino logger at all: nothing to tell, nothing printed
  t.equal(printsQueryToken(Fastify().log), undefined, 'logger: false cannot be told (and prints nothing)')
  t.equal(printsQueryToken({ info () {} }), undefined, 'nor can a logger that is not pino')
})

t.test('requestSerializer is a drop-in: Fastify\'s own request fields, only the url redacted', async (t) => {
  const app = Fastify({ trustProxy: true, logger: { level: 'silent' } })
  t.after(() => app.close())
  const fastifys = (app.log as any)[Symbol.for('pino.serializers')].req as (req: unknown) => Record<string, unknown>
  app.get('/x', async (request) => ({ theirs: fastifys(request), ours: requestSerializer(request) }))
  const answers = [
    (await app.inject({ url: '/x?token=abc&keep=1', headers: { 'accept-version': '1.2.0', host: 'api.example.com', 'x-forwarded-for': '203.0.113.9' } })).json(),
    (await app.inject({ url: '/x', remoteAddress: '198.51.100.7' })).json(),
    await (await fetch(`${await app.listen({ port: 0, host: '127.0.0.1' })}/x?token=real`)).json()
  ]
  t.same(answers.map((a) => a.ours.url), ['/x?token=[REDACTED]&keep=1', '/x', '/x?token=[REDACTED]'])
  for (const { theirs, ours } of answers) {
    t.same({ ...ours, url: undefined }, { ...theirs, url: undefined }, `${String(theirs.url)}: method, version, host, remoteAddress (trustProxy-aware) and remotePort as Fastify's`)
  }
  t.match(answers[0].ours, { version: '1.2.0', host: 'api.example.com', remoteAddress: '203.0.113.9' })
  t.type(answers[2].ours.remotePort, 'number')

  // a raw IncomingMessage (an app logging { req: request.raw }) works too
  t.same(requestSerializer({ method: 'GET', url: '/?token=x', headers: { host: 'h' }, socket: { remoteAddress: '::1', remotePort: 9 } } as any),
    { method: 'GET', url: '/?token=[REDACTED]', host: 'h', remoteAddress: '::1', remotePort: 9 })
})

t.test('the not-found redaction leaves matched routes and their query alone', async (t) => {
  const app = await loggedApp(t, {})
  app.get('/echo', async (request) => ({ url: request.url, query: request.query }))
  app.setNotFoundHandler(async (request, reply) => reply.code(404).send({ url: request.url, token: (request.query as any).token }))
  const routed = await app.inject({ url: '/echo?token=abc' })
  t.same(routed.json(), { url: '/echo?token=abc', query: { token: 'abc' } }, 'a route of the app sees its url as it came')
  const missed = await app.inject({ url: '/missing?a=1&token=abc' })
  t.same(missed.json(), { url: '/missing?a=1&token=[REDACTED]', token: 'abc' }, 'a miss: the text is redacted, the parsed query is intact')
})
