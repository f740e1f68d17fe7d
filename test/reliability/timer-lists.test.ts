// Memory that outlives a connection: node keeps one TimersList per distinct
// timer duration, and keeps it after clearTimeout until that duration has
// elapsed. A per-connection timer armed for "exactly until the token expires"
// has a duration of its own for every connection, so each closed connection
// leaves ~100 bytes behind for the rest of its token's lifetime (found by the
// soak: 6094 TimersList objects on the heap after 17,000 connections with
// 1-hour tokens). This counts the distinct long durations the plugin arms.
import { createHook } from 'node:async_hooks'
import t from 'tap'
import { build, sign, sleep } from '../helpers.js'

const CONNECTIONS = 200

t.test('connections with expiring tokens do not each leave a timer list behind', async (t) => {
  const app = await build(t, { heartbeat: false, routes: [{ path: '/c', messages: {} }] })
  await app.ready()
  const durations = new Set<number>()
  const hook = createHook({
    init (_id, type, _trigger, resource) {
      // only long timers: the short ones of ws, fastify and this test are not in question
      const ms = (resource as { _idleTimeout?: number })._idleTimeout
      if (type === 'Timeout' && typeof ms === 'number' && ms >= 60_000) durations.add(ms)
    }
  })
  hook.enable()
  try {
    for (let i = 0; i < CONNECTIONS; i++) {
      const token = sign(app, `user${i}`, { exp: Math.floor(Date.now() / 1000) + 3600 })
      const ws = await app.injectWS('/c', { headers: { authorization: `Bearer ${token}` } })
      const closed = new Promise((resolve) => ws.once('close', resolve))
      ws.close()
      await closed
      await sleep(2)
    }
  } finally {
    hook.disable()
  }
  t.equal(app.realtime.stats().connections, 0, 'every connection closed')
  // with durations rounded or chunked (e.g. at most 60 s, in whole seconds), connections share a few lists
  t.ok(durations.size <= 61, `${CONNECTIONS} connections armed ${durations.size} distinct long timer durations (each one a TimersList kept until it elapses)`)
})
