// The example app with the Redis adapter (what REDIS_URL selects in
// example-app/server.js): room history lives in Redis, so an instance started
// after another one closed still has the room's last messages.
import { test } from 'tap'
import { redisAdapter } from 'fastify-realtime/redis'
import { build } from '../../example-app/app.js'
import { REDIS_URL, requireRedis, uniquePrefix } from './support.js'

const SECRET = 'redis-example-test-secret-of-32-characters'

test('example app: history in Redis survives a restart', async (t) => {
  if (!await requireRedis(t)) return
  const keyPrefix = uniquePrefix(t)
  const start = async (): Promise<Awaited<ReturnType<typeof build>>> =>
    await build({ jwtSecret: SECRET, adapter: redisAdapter({ url: REDIS_URL, keyPrefix }) })

  const first = await start()
  const { token } = (await first.inject({ method: 'POST', url: '/login', payload: { name: 'ann' } })).json()
  for (const text of ['one', 'two']) {
    const res = await first.inject({ method: 'POST', url: '/announce', headers: { authorization: `Bearer ${token}` }, payload: { room: 'general', text } })
    t.equal(res.statusCode, 200)
  }
  const before = await first.realtime.history('general', { limit: 50 })
  await first.close()

  const second = await start()
  t.after(() => second.close())
  const after = await second.realtime.history('general', { limit: 50 })
  t.same(after.messages.map((m) => (m.data as { text: string }).text), ['one', 'two'], 'the messages are still there')
  t.equal(after.epoch, before.epoch, 'same epoch: a page that reconnects to the new instance resumes')
  t.equal(after.offset, before.offset)
})
