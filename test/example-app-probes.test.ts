// The example app's operations routes: /metrics (Prometheus text, with the
// realtime metrics after real traffic) and /ready (draining and the adapter).
import { test } from 'tap'
import { build } from '../example-app/app.js'
import { closed, connect, listen, sleep } from './helpers.js'

const SECRET = 'example-app-test-secret-of-32-characters-or-more'

async function login (app: any, name: string): Promise<string> {
  return (await app.inject({ method: 'POST', url: '/login', payload: { name } })).json().token
}

test('/metrics exposes the realtime metrics in the Prometheus text format', async (t) => {
  const app = await build({ jwtSecret: SECRET })
  t.after(() => app.close())
  const url = await listen(app)
  const alice = await connect(`${url}/chat`, { headers: { authorization: `Bearer ${await login(app, 'alice')}` } })
  await alice.request({ type: 'join', room: 'general', id: 1 })
  await alice.request({ type: 'chat.send', room: 'general', data: { text: 'hi' }, id: 2 })
  await alice.request({ type: 'join', room: 'nope', id: 3 })

  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  t.match(res.body, /^realtime_connections\{route="\/chat"\} 1$/m)
  t.match(res.body, /^realtime_connects_total\{route="\/chat"\} 1$/m)
  t.match(res.body, /^realtime_messages_received_total\{route="\/chat",type="join"\} 2$/m)
  t.match(res.body, /^realtime_messages_received_total\{route="\/chat",type="chat\.send"\} 1$/m)
  t.match(res.body, /^realtime_errors_total\{code="FORBIDDEN"\} 1$/m)
  t.match(res.body, /^realtime_handler_duration_seconds_count\{route="\/chat",type="chat\.send"\} 1$/m)
  t.match(res.body, /^realtime_rooms 1$/m)
  t.match(res.body, /^realtime_adapter_connected 1$/m)
  t.notOk(res.body.includes('alice'), 'no user in any label')
  alice.ws.close()
  await closed(alice.ws)
})

test('/ready: 200 while serving; 503 when draining or when the adapter is down', async (t) => {
  const app = await build({ jwtSecret: SECRET })
  t.after(() => app.close())
  const ready = await app.inject('/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { ready: true, draining: false, adapterConnected: true })

  // what the route reads, as app.close() and a Redis outage would set it
  const stats = app.realtime.stats.bind(app.realtime)
  Object.defineProperty(app.realtime, 'stats', { value: () => ({ ...stats(), adapter: { connected: false } }), configurable: true })
  const down = await app.inject('/ready')
  t.equal(down.statusCode, 503)
  t.same(down.json(), { ready: false, draining: false, adapterConnected: false })
  Object.defineProperty(app.realtime, 'stats', { value: stats })
  Object.defineProperty(app.realtime, 'draining', { value: true, configurable: true })
  const draining = await app.inject('/ready')
  t.equal(draining.statusCode, 503)
  t.same(draining.json(), { ready: false, draining: true, adapterConnected: true })
})

test('/ready during a real app.close(): the probe fails while the instance drains', async (t) => {
  const app = await build({ jwtSecret: SECRET })
  t.after(() => app.close())
  const url = await listen(app)
  const http = url.replace('ws://', 'http://')
  t.equal((await fetch(`${http}/ready`)).status, 200)
  // a client that does not read keeps app.close() in its grace period
  const bob = await connect(`${url}/chat`, { headers: { authorization: `Bearer ${await login(app, 'bob')}` } })
  ;(bob.ws as any)._socket.pause()
  const closing = app.close()
  while (!app.realtime.draining) await sleep(1)
  // Fastify answers 503 to any request once close() began (return503OnClosing); the route says the same
  t.equal((await fetch(`${http}/ready`)).status, 503)
  ;(bob.ws as any)._socket.resume()
  await closing
})
