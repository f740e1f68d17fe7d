import t from 'tap'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import realtime, { memoryAdapter } from '../lib/index.js'
import { resolveOptions } from '../lib/options.js'
import { SECRET, build, inject, sign, hub } from './helpers.js'

/** Every default of SPEC section 2, as resolveOptions spells it. */
const SPEC_DEFAULTS = {
  routes: [],
  auth: { required: true, extractToken: undefined },
  maxConnections: 10_000,
  maxConnectionsPerUser: Number.MAX_SAFE_INTEGER, // "none"
  maxPayload: 65_536,
  heartbeat: { interval: 30_000 },
  maxRoomsPerConnection: 100,
  rateLimit: { max: 100, windowMs: 1000 },
  maxBufferedBytes: 1024 * 1024,
  allowedOrigins: undefined, // same host
  adapter: undefined, // in-memory, made by the server
  closeGracePeriod: 5000,
  perMessageDeflate: false,
  canJoin: undefined, // every route's own, else allow
  adapterTimeout: 1000,
  metrics: undefined, // off (SPEC section 12)
  connectionLogLevel: 'info',
  history: undefined, // off
  drain: { spread: 0, retry: 1000 } // 1001 to all at once
}

t.test('resolveOptions applies exactly the defaults of SPEC section 2', async (t) => {
  t.strictSame(resolveOptions(), SPEC_DEFAULTS)
  t.strictSame(resolveOptions({}), SPEC_DEFAULTS)
  t.strictSame(resolveOptions({ auth: {}, heartbeat: {}, rateLimit: {}, drain: {} }), SPEC_DEFAULTS, 'empty nested objects take the defaults too')
  t.strictSame(resolveOptions({ history: false }), SPEC_DEFAULTS, 'history: false is off')
  t.strictSame(resolveOptions({ rateLimit: { max: 5 } }).rateLimit, { max: 5, windowMs: 1000 }, 'nested defaults apply one key at a time')
  t.strictSame(resolveOptions({ rateLimit: { windowMs: 50 } }).rateLimit, { max: 100, windowMs: 50 })
  t.strictSame(resolveOptions({ auth: { required: false } }).auth, { required: false, extractToken: undefined })
  t.equal(resolveOptions({ heartbeat: false }).heartbeat, false, 'heartbeat: false turns it off')
})

t.test('a key that is not an option fails register, naming the nearest known one', async (t) => {
  t.throws(() => resolveOptions({ maxConnection: 5 } as any), { code: 'FST_REALTIME_INVALID_OPTION', message: /"maxConnection" is not an option; did you mean "maxConnections"\?/ })
  t.throws(() => resolveOptions({ ratelimit: {} } as any), { message: /did you mean "rateLimit"/ })
  t.throws(() => resolveOptions({ rateLimit: { maxx: 1 } } as any), { message: /"rateLimit.maxx" is not an option; did you mean "rateLimit.max"/ })
  t.throws(() => resolveOptions({ auth: { require: false } } as any), { message: /did you mean "auth.required"/ })
  t.throws(() => resolveOptions({ heartbeat: { intervall: 5 } } as any), { message: /did you mean "heartbeat.interval"/ })
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await t.rejects(async () => { await app.register(realtime, { maxPayLoad: 10 } as any) }, { code: 'FST_REALTIME_INVALID_OPTION', message: /did you mean "maxPayload"/ })
})

t.test('the resolved options are frozen copies', async (t) => {
  const origins = ['https://a.example']
  const routes = [{ path: '/rt' }]
  const resolved = resolveOptions({ allowedOrigins: origins, routes, heartbeat: { interval: 100 } })
  t.ok(Object.isFrozen(resolved))
  for (const key of ['auth', 'heartbeat', 'rateLimit', 'routes', 'allowedOrigins'] as const) t.ok(Object.isFrozen(resolved[key]), `${key} is frozen`)
  origins.push('https://b.example')
  routes.push({ path: '/other' })
  t.same(resolved.allowedOrigins, ['https://a.example'], 'later changes to the caller\'s array do not leak in')
  t.equal(resolved.routes.length, 1)
})

t.test('edge values inside the ranges are accepted', async (t) => {
  const extractToken = (): undefined => undefined
  const allow = (): boolean => true
  const adapter = memoryAdapter()
  const given = {
    auth: { required: false, extractToken },
    maxConnections: 1,
    maxConnectionsPerUser: 1,
    maxPayload: 64,
    heartbeat: { interval: 10 },
    maxRoomsPerConnection: 1,
    rateLimit: { max: 1, windowMs: 1 },
    maxBufferedBytes: 1024,
    allowedOrigins: allow,
    adapter,
    closeGracePeriod: 0,
    perMessageDeflate: true,
    canJoin: allow,
    adapterTimeout: 1,
    drain: { spread: 0, retry: 0 }
  }
  const resolved = resolveOptions(given)
  t.strictSame(resolved, { ...SPEC_DEFAULTS, ...given })
  t.equal(resolved.allowedOrigins, allow)
  t.equal(resolved.adapter, adapter)
  t.equal(resolveOptions({ allowedOrigins: '*' }).allowedOrigins, '*')
  t.same(resolveOptions({ allowedOrigins: [] }).allowedOrigins, [])
  t.equal(resolveOptions({ heartbeat: { interval: 2 ** 31 - 1 }, closeGracePeriod: 2 ** 31 - 1 }).closeGracePeriod, 2 ** 31 - 1, 'the longest timer Node allows')
})

/** [option named in the message, options to register] */
const INVALID: Array<[string, Record<string, unknown>]> = [
  ['options', null as unknown as Record<string, unknown>],
  ['routes', { routes: 'chat' }],
  ['routes', { routes: { path: '/rt' } }],
  ['auth', { auth: 'jwt' }],
  ['auth', { auth: null }],
  ['auth', { auth: [] }],
  ['auth.required', { auth: { required: 'yes' } }],
  ['auth.required', { auth: { required: 0 } }],
  ['auth.extractToken', { auth: { extractToken: 'authorization' } }],
  ['maxConnections', { maxConnections: 0 }],
  ['maxConnections', { maxConnections: -1 }],
  ['maxConnections', { maxConnections: 1.5 }],
  ['maxConnections', { maxConnections: '10' }],
  ['maxConnections', { maxConnections: Number.NaN }],
  ['maxConnections', { maxConnections: Number.POSITIVE_INFINITY }],
  ['maxConnections', { maxConnections: null }],
  ['maxConnectionsPerUser', { maxConnectionsPerUser: 0 }],
  ['maxConnectionsPerUser', { maxConnectionsPerUser: 'one' }],
  ['maxPayload', { maxPayload: 0 }],
  ['maxPayload', { maxPayload: 63 }],
  ['maxPayload', { maxPayload: '64kb' }],
  ['heartbeat', { heartbeat: true }],
  ['heartbeat', { heartbeat: null }],
  ['heartbeat', { heartbeat: 30_000 }],
  ['heartbeat.interval', { heartbeat: { interval: 0 } }],
  ['heartbeat.interval', { heartbeat: { interval: 9 } }],
  ['heartbeat.interval', { heartbeat: { interval: 2 ** 31 } }],
  ['heartbeat.interval', { heartbeat: { interval: '30s' } }],
  ['maxRoomsPerConnection', { maxRoomsPerConnection: 0 }],
  ['maxRoomsPerConnection', { maxRoomsPerConnection: 'many' }],
  ['rateLimit', { rateLimit: null }],
  ['rateLimit', { rateLimit: 100 }],
  ['rateLimit.max', { rateLimit: { max: 0 } }],
  ['rateLimit.max', { rateLimit: { max: 'lots' } }],
  ['rateLimit.windowMs', { rateLimit: { windowMs: 0 } }],
  ['rateLimit.windowMs', { rateLimit: { windowMs: 2 ** 31 } }],
  ['maxBufferedBytes', { maxBufferedBytes: 0 }],
  ['maxBufferedBytes', { maxBufferedBytes: 1023 }],
  ['maxBufferedBytes', { maxBufferedBytes: '1MiB' }],
  ['allowedOrigins', { allowedOrigins: 'same-host' }],
  ['allowedOrigins', { allowedOrigins: true }],
  ['allowedOrigins', { allowedOrigins: null }],
  ['allowedOrigins', { allowedOrigins: ['https://a.example', 5] }],
  ['adapter', { adapter: 'redis' }],
  ['adapter', { adapter: null }],
  ['adapter', { adapter: {} }],
  ['adapter', { adapter: { ...memoryAdapter(), members: undefined } }],
  ['closeGracePeriod', { closeGracePeriod: -1 }],
  ['closeGracePeriod', { closeGracePeriod: 2 ** 31 }],
  ['closeGracePeriod', { closeGracePeriod: '5s' }],
  ['perMessageDeflate', { perMessageDeflate: 'yes' }],
  ['perMessageDeflate', { perMessageDeflate: {} }],
  ['perMessageDeflate', { perMessageDeflate: 1 }],
  ['metrics', { metrics: 'on' }],
  ['metrics.prefix', { metrics: { prefix: 'has space' } }],
  ['connectionLogLevel', { connectionLogLevel: 'verbose' }],
  ['connectionLogLevel', { connectionLogLevel: true }],
  ['history', { history: true }],
  ['history', { history: null }],
  ['history', { history: 50 }],
  ['history.size', { history: {} }],
  ['history.size', { history: { size: 0 } }],
  ['history.size', { history: { size: 10_001 } }],
  ['history.size', { history: { size: 1.5 } }],
  ['history.size', { history: { size: '50' } }],
  ['history.ttl', { history: { size: 10, ttl: 999 } }],
  ['history.ttl', { history: { size: 10, ttl: 2 ** 31 } }],
  ['history.ttl', { history: { size: 10, ttl: '5m' } }],
  ['history.rooms', { history: { size: 10, rooms: 'chat:*' } }],
  ['history.sise', { history: { sise: 10 } }],
  ['drain', { drain: 5000 }],
  ['drain', { drain: null }],
  ['drain.spread', { drain: { spread: -1 } }],
  ['drain.spread', { drain: { spread: 1.5 } }],
  ['drain.spread', { drain: { spread: 2 ** 31 } }],
  ['drain.retry', { drain: { retry: -1 } }],
  ['drain.retry', { drain: { retry: '1s' } }],
  ['drain.spred', { drain: { spred: 10_000 } }]
]

t.test('every option of the wrong type or range makes register fail with FST_REALTIME_INVALID_OPTION naming it', async (t) => {
  for (const [name, opts] of INVALID) {
    const label = `${name}: ${JSON.stringify(opts)}`
    t.throws(() => resolveOptions(opts), { code: 'FST_REALTIME_INVALID_OPTION' }, label)
    if (name === 'options') continue // register always hands the plugin an object
    const app = Fastify()
    await app.register(jwt, { secret: SECRET })
    await t.rejects(async () => { await app.register(realtime, opts) }, {
      code: 'FST_REALTIME_INVALID_OPTION',
      message: new RegExp(`^fastify-realtime: option "${name.replace('.', '\\.')}" `)
    }, `register: ${label}`)
    await app.close().catch(() => {})
  }
})

t.test('history and drain: edge values, defaults one key at a time, and their messages', async (t) => {
  const rooms = (room: string): boolean => room.startsWith('chat:')
  t.same(resolveOptions({ history: { size: 1, ttl: 1000 } }).history, { size: 1, ttl: 1000, rooms: resolveOptions({ history: { size: 1 } }).history?.rooms })
  t.equal(resolveOptions({ history: { size: 10_000 } }).history?.size, 10_000)
  t.equal(resolveOptions({ history: { size: 5 } }).history?.ttl, 300_000, 'ttl defaults to 5 minutes')
  t.equal(resolveOptions({ history: { size: 5 } }).history?.rooms('any'), true, 'every room keeps history by default')
  t.equal(resolveOptions({ history: { size: 5, rooms } }).history?.rooms, rooms)
  t.ok(Object.isFrozen(resolveOptions({ history: { size: 5 } }).history))
  t.strictSame(resolveOptions({ drain: { spread: 0, retry: 0 } }).drain, { spread: 0, retry: 0 })
  t.strictSame(resolveOptions({ drain: { spread: 30_000 } }).drain, { spread: 30_000, retry: 1000 })
  t.ok(Object.isFrozen(resolveOptions({}).drain))
  t.throws(() => resolveOptions({ history: {} as any }), { message: /option "history\.size" is required/ })
  t.throws(() => resolveOptions({ history: { size: 10, ttl: 10 } }), { message: /option "history\.ttl" must be an integer from 1000 to 2147483647, got 10$/ })
  t.throws(() => resolveOptions({ history: { sise: 10 } as any }), { message: /option "history\.sise" is not an option; did you mean "history\.size"\?/ })
  t.throws(() => resolveOptions({ drain: { spread: -5 } }), { message: /option "drain\.spread" must be an integer from 0 to 2147483647, got -5$/ })
})

t.test('history with an adapter that keeps none fails register, naming the option', async (t) => {
  const { historyStore, ...plain } = Object.getOwnPropertyDescriptors(Object.getPrototypeOf(memoryAdapter()))
  t.ok(historyStore, 'the in-memory adapter keeps history')
  const adapter = Object.create(Object.prototype, plain)
  const app = Fastify()
  await app.register(jwt, { secret: SECRET })
  await t.rejects(async () => { await app.register(realtime, { adapter, history: { size: 10 } }) }, {
    code: 'FST_REALTIME_INVALID_OPTION',
    message: /option "history" needs an adapter that keeps history/
  })
  await app.close().catch(() => {})
})

t.test('the message says what is wrong and what was given', async (t) => {
  try {
    resolveOptions({ maxPayload: -1 })
    t.fail('should have thrown')
  } catch (err) {
    t.type(err, TypeError, 'a TypeError, as a wrong option is')
  }
  t.throws(() => resolveOptions({ maxConnections: 0 }), { message: 'fastify-realtime: option "maxConnections" must be an integer from 1 to 9007199254740991, got 0' })
  t.throws(() => resolveOptions({ heartbeat: { interval: 5 } }), { message: /option "heartbeat\.interval" must be an integer from 10 to 2147483647, got 5$/ })
  t.throws(() => resolveOptions({ adapter: {} as any }), { message: /option "adapter" must implement attach\(\)/ })
  t.throws(() => resolveOptions({ allowedOrigins: 'x' as any }), { message: /option "allowedOrigins" must be '\*', an array of origins or a function/ })
})

t.test('the registered plugin runs with the defaults: its resolved options, ws settings, auth and origin', async (t) => {
  const app = await build(t, { routes: [{ path: '/rt' }] })
  await app.ready()
  t.strictSame({ ...hub(app).options, routes: [] }, { ...SPEC_DEFAULTS, routes: [] })
  const wss = (app as any).websocketServer
  t.equal(wss.options.maxPayload, 65_536, 'maxPayload reaches ws')
  t.equal(wss.options.perMessageDeflate, false, 'compression is off')
  await t.rejects(app.injectWS('/rt'), { message: 'Unexpected server response: 401' }, 'auth is required')
  await t.rejects(app.injectWS('/rt', { headers: { authorization: `Bearer ${sign(app, 'a')}`, host: 'a.example', origin: 'https://b.example' } }),
    { message: 'Unexpected server response: 403' }, 'a foreign Origin is refused')
})

t.test('default rateLimit: 100 messages a second pass, the 101st is RATE_LIMITED', async (t) => {
  const app = await build(t, { routes: [{ path: '/rt' }] })
  await app.ready()
  const client = await inject(app, '/rt', sign(app, 'a'))
  for (let i = 0; i < 101; i++) client.send({ type: 'ping' })
  const error = await client.type('error')
  t.equal(error.code, 'RATE_LIMITED')
  t.equal(client.messages.filter((m) => m.type === 'pong').length, 100, 'exactly 100 passed before it')
  client.ws.terminate()
})

t.test('default maxRoomsPerConnection: the 101st join is TOO_MANY_ROOMS', async (t) => {
  const app = await build(t, { routes: [{ path: '/rt' }], rateLimit: { max: 1000 } })
  await app.ready()
  const client = await inject(app, '/rt', sign(app, 'a'))
  for (let i = 0; i < 100; i++) client.send({ type: 'join', room: `room-${i}` })
  const last = await client.request({ type: 'join', room: 'room-100', id: 'last' })
  t.match(last, { type: 'error', id: 'last', code: 'TOO_MANY_ROOMS' })
  t.equal(app.realtime.connections()[0].rooms.size, 100)
  client.ws.terminate()
})
