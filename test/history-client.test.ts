// SPEC sections 10 and 11 through the client library against the real server
// (in-memory store): a client that loses its link, or is drained with 1012,
// comes back with `since` and holds every offset once, in order.
import { test } from 'tap'
import { sign } from './helpers.js'
import { chatServer, nextEvent, opened, record, until } from './client-helpers.js'
import { createClient } from '../lib/client/index.js'

test('a client whose link drops during a broadcast loop resumes with since: every offset once, in order, no resync', async (t) => {
  const { app, url } = await chatServer(t, { realtime: { history: { size: 10_000 }, rateLimit: { max: 100_000 } } })
  const client = createClient(url, { token: sign(app, 'alice'), heartbeat: false, reconnect: { base: 1, cap: 20 } })
  t.after(() => client.close())
  const got = record(client, ['m', 'resync'])
  await opened(client)
  t.match(await client.join('r'), { room: 'r', offset: 0 })
  let running = true
  let sent = 0
  const pump = (): void => {
    if (!running) return
    app.realtime.broadcast('r', 'm', ++sent)
    setTimeout(pump, 1)
  }
  pump()
  for (let cut = 0; cut < 5; cut++) {
    await until(() => got.length > 0 && app.realtime.connections().length === 1, 5000, 'the client to be back')
    const before = got.length
    await until(() => got.length > before + 10, 5000, 'some traffic')
    app.realtime.connections()[0].terminate() // a lost link: the client reconnects and re-joins with since
  }
  await until(() => app.realtime.connections().length === 1 && app.realtime.rooms().includes('r'), 5000, 'the last re-join')
  running = false
  await until(() => got.length > 0 && got.at(-1)?.[1] === sent, 5000, 'the last broadcast')
  t.same(got.filter(([type]) => type === 'resync'), [], 'never had to reload')
  t.same(got.map(([, data]) => data), Array.from({ length: sent }, (_, i) => i + 1), `all ${sent} broadcasts, once each, in order, across 5 reconnects`)
})

test('a client drained with 1012 waits the hint, comes back to the new instance, and is told to reload (in-memory history is lost)', async (t) => {
  const first = await chatServer(t, { realtime: { history: { size: 100 }, drain: { spread: 200, retry: 100 } } })
  const client = createClient(first.url, { token: sign(first.app, 'alice'), heartbeat: false, reconnect: { base: 1000, cap: 5000 }, rooms: ['r'] })
  t.after(() => client.close())
  await opened(client)
  await until(() => first.app.realtime.rooms().includes('r'), 2000, 'the join')
  first.app.realtime.broadcast('r', 'm', 1)
  await nextEvent(client, 'm')
  const reconnecting = nextEvent(client, 'reconnecting')
  const closedWith = nextEvent(client, 'close')
  await first.app.close()
  t.match(await closedWith, { code: 1012, reason: 'retry 100' })
  t.ok((await reconnecting).delay <= 100, 'the first attempt waits at most the hint, not the 1 s backoff')
  const second = await chatServer(t, { port: first.port, realtime: { history: { size: 100 } } })
  const resync = await nextEvent(client, 'resync')
  t.same(resync, { room: 'r' }, 'another epoch: the app reloads')
  second.app.realtime.broadcast('r', 'm', 2)
  t.equal(await nextEvent(client, 'm'), 2, 'then live messages of the new epoch')
})
