import t from 'tap'
import { Redis } from 'ioredis'
import { RedisAdapter, redisAdapter } from '../../lib/adapters/redis.js'
import defaultExport from '../../lib/adapters/redis.js'

// no Redis needed: clients made from a url connect lazily, at attach

t.test('defaults', async (t) => {
  const adapter = redisAdapter()
  t.ok(adapter instanceof RedisAdapter)
  t.equal(defaultExport, redisAdapter, 'the default export is redisAdapter')
  t.equal(adapter.keyPrefix, 'fastify-realtime')
  t.equal(adapter.heartbeatInterval, 5000)
  t.equal(adapter.instanceTtl, 15000, 'three heartbeats')
  t.equal(adapter.url, 'redis://127.0.0.1:6379')
  t.equal(adapter.client, undefined, 'nothing is made, nor connected, before attach (ioredis is loaded there)')
  t.equal(adapter.connected, false)
  await adapter.close()
})

t.test('url, keyPrefix and timings are taken', async (t) => {
  const adapter = redisAdapter({ url: 'redis://127.0.0.1:6390/2', keyPrefix: 'app1', heartbeatInterval: 100, instanceTtl: 250 })
  const hub = { instanceId: 'x', log: { debug () {}, info () {}, warn () {} } as any, deliverToRoom () {}, deliverToUser () {}, localMembers: () => [] }
  // nothing listens there: attach fails, and the connections it made show the url's parts
  await t.rejects(adapter.attach(hub), { code: 'FST_REALTIME_ADAPTER_UNAVAILABLE' })
  t.equal(adapter.client.options.port, 6390)
  t.equal(adapter.client.options.db, 2)
  t.equal(adapter.subscriber.options.port, 6390, 'the subscriber goes to the same server')
  t.not(adapter.subscriber, adapter.client)
  t.equal(adapter.keyPrefix, 'app1')
  t.equal(adapter.instanceTtl, 250)
  await adapter.close()
})

t.test('bad options fail with FST_REALTIME_INVALID_OPTION naming the option', async (t) => {
  const client = new Redis({ lazyConnect: true })
  const cases: Array<[Record<string, unknown>, string]> = [
    [{ keyPrefix: '' }, 'redisAdapter.keyPrefix'],
    [{ keyPrefix: 'has space' }, 'redisAdapter.keyPrefix'],
    [{ keyPrefix: 42 }, 'redisAdapter.keyPrefix'],
    [{ url: 6379 }, 'redisAdapter.url'],
    [{ url: 'redis://x', client }, 'redisAdapter.url'],
    [{ client: {} }, 'redisAdapter.client'],
    [{ subscriber: 'no' }, 'redisAdapter.subscriber'],
    [{ client, subscriber: client }, 'redisAdapter.subscriber'],
    [{ heartbeatInterval: 0 }, 'redisAdapter.heartbeatInterval'],
    [{ heartbeatInterval: 1.5 }, 'redisAdapter.heartbeatInterval'],
    [{ heartbeatInterval: 1000, instanceTtl: 1000 }, 'redisAdapter.instanceTtl']
  ]
  for (const [options, name] of cases) {
    t.throws(() => redisAdapter(options as any), { code: 'FST_REALTIME_INVALID_OPTION', message: new RegExp(`"${name.replace('.', '\\.')}"`) }, JSON.stringify(Object.keys(options)))
  }
  t.throws(() => redisAdapter(null as any), { code: 'FST_REALTIME_INVALID_OPTION' })
})

t.test('one adapter serves one app', async (t) => {
  const adapter = redisAdapter()
  const hub = { instanceId: 'x', log: console as any, deliverToRoom () {}, deliverToUser () {}, localMembers: () => [] }
  const first = Promise.resolve(adapter.attach(hub)).catch(() => {}) // whether Redis is there does not matter here
  await t.rejects(adapter.attach(hub), { code: 'FST_REALTIME_ADAPTER_IN_USE', message: /already serves an app/ })
  await first
  await adapter.close()
  t.equal(adapter.client.status, 'end')
})
