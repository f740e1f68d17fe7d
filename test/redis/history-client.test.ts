// SPEC sections 10 and 11 through the client library with Redis: the instance a
// client is on drains (1012) and is replaced while another instance keeps
// broadcasting; the client comes back to the new one and misses nothing.
import t from 'tap'
import { redisAdapter } from '../../lib/adapters/redis.js'
import { createClient } from '../../lib/client/index.js'
import type { RealtimeOptions } from '../../lib/index.js'
import { build, sign } from '../helpers.js'
import { nextEvent, opened, record } from '../client-helpers.js'
import { chatRoutes, REDIS_URL, requireRedis, startInstance, uniquePrefix, until } from './support.js'

async function instanceOn (t: any, prefix: string, port: number, realtime: RealtimeOptions) {
  const app = await build(t, { routes: chatRoutes(), heartbeat: false, adapter: redisAdapter({ url: REDIS_URL, keyPrefix: prefix }), ...realtime })
  await app.listen({ port, host: '127.0.0.1' })
  return app
}

if (await requireRedis(t)) {
  t.test('a client of an instance that drains and is replaced resumes on the new one: every offset once, in order', async (t) => {
    const prefix = uniquePrefix(t)
    const realtime: RealtimeOptions = { history: { size: 10_000 }, drain: { spread: 300, retry: 200 }, closeGracePeriod: 500 }
    const other = await startInstance(t, prefix, { realtime })
    const first = await instanceOn(t, prefix, 0, realtime)
    const port = (first.server.address() as { port: number }).port
    const client = createClient(`ws://127.0.0.1:${port}/chat`, { token: sign(first, 'alice'), heartbeat: false, reconnect: { base: 50, cap: 500 } })
    t.after(() => client.close())
    const got = record(client, ['m', 'resync'])
    await opened(client)
    t.match(await client.join('r'), { room: 'r', offset: 0 }, 'joined before the first broadcast')
    let running = true
    let sent = 0
    const pump = (): void => {
      if (!running) return
      other.app.realtime.broadcast('r', 'm', ++sent)
      setTimeout(pump, 2)
    }
    pump()
    await until(() => got.length > 20, 5000, 'traffic')
    const closed = nextEvent(client, 'close')
    await first.close()
    t.match(await closed, { code: 1012, reason: 'retry 200' })
    const second = await instanceOn(t, prefix, port, realtime)
    await until(() => second.realtime.rooms().includes('r'), 5000, 'the client back on the new instance')
    await until(() => got.length > 0 && got.at(-1)?.[1] > sent - 5, 5000, 'live traffic again')
    running = false
    await until(async () => (await other.app.realtime.history('r')).offset === sent, 5000, 'every broadcast sequenced')
    await until(() => got.at(-1)?.[1] === sent, 5000, 'the last one')
    t.same(got.filter(([type]) => type === 'resync'), [], 'no reload: Redis kept what it missed')
    t.same(got.map(([, data]) => data), Array.from({ length: sent }, (_, i) => i + 1), `all ${sent}, once each, in order`)
  })
}
