// When the client reconnects: the backoff's cap and when it starts over, the
// bound on attempts that never open, and the server's drain hint (close 1012).
import { test } from 'tap'
import WebSocket from 'ws'
import { sign, sleep } from './helpers.js'
import { chatServer, fakeServer, nextEvent, opened, record, until } from './client-helpers.js'
import { createClient, type ClientOptions } from '../lib/client/index.js'
import { resolveSettings } from '../lib/client/options.js'
import { restartDelay, MAX_RESTART_HINT } from '../lib/client/backoff.js'

function client (t: any, url: string, options: ClientOptions) {
  const c = createClient(url, { heartbeat: false, ...options })
  t.after(() => c.close())
  return c
}

/** ws's class used as a standard WebSocket: a refused upgrade shows no HTTP status, as in a browser. */
class BrowserLike extends WebSocket {}

test('defaults: a 5 s cap (Socket.IO\'s), reset after 5 s of health, 10 failed attempts with a fixed token', async (t) => {
  const fixed = resolveSettings({ token: 'x' }).reconnect
  t.match(fixed, { base: 500, cap: 5000, resetAfter: 5000, maxConnectFailures: 10, maxRetries: Infinity })
  const fresh = resolveSettings({ getToken: () => 'x' }).reconnect
  t.match(fresh, { maxConnectFailures: Infinity }, 'getToken may heal a refusal: no bound')
  t.match(resolveSettings({ reconnect: { maxConnectFailures: Infinity } }).reconnect, { maxConnectFailures: Infinity }, 'Infinity turns it off')
})

test('a server that closes right after the upgrade: the backoff keeps growing, about 7 connections per 10 s', async (t) => {
  // the defaults scaled down 10x (base 50, cap 500, healthy after 500 ms): 1 s here is 10 s of the real thing
  const server = await fakeServer(t, (link) => { link.socket.close(1011, 'no') })
  const c = client(t, server.url, { reconnect: { base: 50, cap: 500, resetAfter: 500, random: () => 0.5 } })
  const retries = record(c, ['reconnecting'])
  await sleep(1000)
  const connections = server.links.length
  await c.close()
  t.comment(`${connections} connections in 1 s at 1/10 scale (10 s of the defaults)`)
  t.ok(connections >= 2 && connections <= 9, `${connections} connections, not one every base/2 ms`)
  t.same(retries.slice(0, 6).map(([, info]) => info), [
    { attempt: 1, delay: 25 },
    { attempt: 2, delay: 50 },
    { attempt: 3, delay: 100 },
    { attempt: 4, delay: 200 },
    { attempt: 5, delay: 250 },
    { attempt: 6, delay: 250 }
  ], 'an open that did not last does not reset the attempt, and the cap holds the delay')
})

test('a link that stayed up resetAfter ms starts the backoff over', async (t) => {
  // connections 1-3 close at once, the 4th after 600 ms (healthy: resetAfter is 200), then at once again
  const server = await fakeServer(t, (link) => {
    if (link.index === 3) setTimeout(() => { link.socket.close(1011, 'later') }, 600)
    else link.socket.close(1011, 'no')
  })
  const c = client(t, server.url, { reconnect: { base: 10, cap: 40, resetAfter: 200, random: () => 0.5 } })
  const retries = record(c, ['reconnecting'])
  await until(() => retries.length >= 5, 3000, 'five retries')
  t.same(retries.slice(0, 5).map(([, info]) => info.attempt), [1, 2, 3, 1, 2])
})

test('a refused upgrade seen as a network error (browser): the client stops after 10 failures with CONNECT_FAILED', async (t) => {
  const { url, upgrades } = await chatServer(t)
  const c = client(t, url, { token: 'bad.token.here', WebSocket: BrowserLike as any, reconnect: { base: 1, cap: 5 } })
  const errors = record(c, ['error'])
  const final = await nextEvent(c, 'error', (err) => err.failures !== undefined)
  t.equal(final.code, 'CONNECT_FAILED')
  t.equal(final.failures, 10)
  t.equal(final.statusCode, undefined, 'no status in a browser')
  t.equal(c.state, 'closed')
  await sleep(50)
  t.equal(upgrades(), 10, 'ten attempts, no more')
  t.equal(errors.length, 10, 'nine per-attempt errors and the final one')
})

test('maxConnectFailures changes the bound, Infinity turns it off; getToken has none by default; an open resets the count', async (t) => {
  const { app, url, upgrades } = await chatServer(t)
  const three = client(t, url, { token: 'bad.token.here', WebSocket: BrowserLike as any, reconnect: { base: 1, cap: 5, maxConnectFailures: 3 } })
  t.equal((await nextEvent(three, 'error', (err) => err.failures !== undefined)).failures, 3)
  t.equal(upgrades(), 3)

  const endless = client(t, url, { token: 'bad.token.here', WebSocket: BrowserLike as any, reconnect: { base: 1, cap: 5, maxConnectFailures: Infinity } })
  await until(() => upgrades() >= 3 + 15, 5000, 'fifteen attempts')
  t.equal(endless.state, 'reconnecting')
  await endless.close()

  // with getToken a bad token is asked about again and again; every 4th is good
  let calls = 0
  const healing = client(t, url, {
    WebSocket: BrowserLike as any,
    reconnect: { base: 1, cap: 5, maxConnectFailures: 4 },
    getToken: () => ++calls % 4 === 0 ? sign(app, 'alice') : 'bad.token.here'
  })
  await opened(healing)
  app.realtime.connections()[0].close(1011, 'restart')
  await nextEvent(healing, 'close')
  await opened(healing)
  t.equal(calls, 8, 'three failures, an open, three failures, an open: the count started over')
})

test('close 1012 "retry <ms>": a random wait in [0, ms] instead of the backoff, reported by reconnecting', async (t) => {
  const server = await fakeServer(t, (link) => {
    if (link.index === 0) link.socket.close(1012, 'retry 300')
    if (link.index === 1) link.socket.close(1012, 'not a hint')
  })
  // the usual backoff would wait 2500 ms here
  const c = client(t, server.url, { reconnect: { base: 5000, cap: 5000, random: () => 0.5 } })
  const events = record(c, ['close', 'reconnecting'])
  const started = Date.now()
  await server.link(1, 2000)
  const waited = Date.now() - started
  t.same(events.slice(0, 2), [['close', { code: 1012, reason: 'retry 300' }], ['reconnecting', { attempt: 1, delay: 150 }]], 'floor(0.5 * 301)')
  t.ok(waited >= 140 && waited < 1000, `reconnected after ${waited} ms`)
  await until(() => events.length === 4, 2000, 'the second close')
  t.same(events[3], ['reconnecting', { attempt: 2, delay: 2500 }], 'a 1012 without a hint: the usual backoff')
})

test('restartDelay: bounds, malformed hints, a huge hint capped', async (t) => {
  t.equal(restartDelay('retry 1000', () => 0), 0)
  t.equal(restartDelay('retry 1000', () => 0.9999999), 1000, 'the hinted ms itself is reachable')
  t.equal(restartDelay('retry 0', () => 0.7), 0)
  t.equal(restartDelay('retry 1000', () => 2), 0, 'a random() out of range cannot push it past the hint')
  t.equal(restartDelay('retry 99999999999', () => 0.5), Math.floor(0.5 * (MAX_RESTART_HINT + 1)), 'capped at 5 minutes')
  for (const reason of ['', 'retry', 'retry -5', 'retry 1.5', 'retry 10 ', 'RETRY 10', 'retry 1e3', `retry ${'9'.repeat(400)}`]) {
    t.equal(restartDelay(reason, () => 0.5), undefined, `no hint in ${JSON.stringify(reason.slice(0, 20))}`)
  }
})
