import t from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import realtime from '../lib/index.js'
import { SECRET, sign } from './helpers.js'
import { logCapture } from './protocol-helpers.js'

// Mistakes get errors that say how to fix them: the option name, the route and
// message type, the package to install, the origin and the option that allows it.

t.test('a refused Origin is logged with the origin, the host it was compared to and the option that would allow it', async (t) => {
  const logs = logCapture()
  const app = Fastify({ logger: { level: 'warn', stream: logs.stream } })
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(realtime, { routes: [{ path: '/rt' }] })
  await app.ready()
  await t.rejects(app.injectWS('/rt', { headers: { authorization: `Bearer ${sign(app, 'a')}`, origin: 'https://evil.example', host: 'app.example' } }),
    { message: 'Unexpected server response: 403' })
  const line = logs.lines.find((l) => /another origin/.test(l.msg))
  t.ok(line, 'one warning line')
  t.match(line, { origin: 'https://evil.example', host: 'app.example', allowedOrigins: /same host/, msg: /allowedOrigins option/ })
  t.notMatch(logs.text(), /Bearer/, 'the token is not in it')
})

t.test('fastify-realtime/redis without ioredis installed says to install it', async (t) => {
  const missing = Object.assign(new Error("Cannot find package 'ioredis'"), { code: 'ERR_MODULE_NOT_FOUND' })
  const { redisAdapter } = await t.mockImport<typeof import('../lib/adapters/redis.js')>('../lib/adapters/redis.js', {
    ioredis: { get Redis () { throw missing } }
  })
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await t.rejects(async () => { await app.register(realtime, { adapter: redisAdapter({ url: 'redis://127.0.0.1:1' }) }) },
    { code: 'FST_REALTIME_MISSING_PEER', message: /fastify-realtime\/redis needs the optional peer dependency "ioredis"/ })
})
