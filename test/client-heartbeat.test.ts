// The app-level heartbeat and page visibility: a hidden tab's throttled timers
// must not pass for a dead link. A `document`-like stub stands in for the page.
import { test } from 'tap'
import { sleep } from './helpers.js'
import { fakeServer, nextEvent, opened, record, until, type FakeLink } from './client-helpers.js'
import { createClient } from '../lib/client/index.js'

/** A stand-in for `document`: an EventTarget with a settable `visibilityState`. */
class PageStub extends EventTarget {
  visibilityState: 'visible' | 'hidden' = 'visible'

  show (state: 'visible' | 'hidden'): void {
    this.visibilityState = state
    this.dispatchEvent(new Event('visibilitychange'))
  }
}

function stubDocument (t: { after: (fn: () => unknown) => void }, state: 'visible' | 'hidden'): PageStub {
  const page = new PageStub()
  page.visibilityState = state
  const global = globalThis as { document?: unknown }
  global.document = page
  t.after(() => { delete global.document })
  return page
}

/** Pings the link received, with the time each arrived. */
function pings (link: FakeLink): number[] {
  const at: number[] = []
  link.socket.on('message', (raw) => { if (JSON.parse(raw.toString()).type === 'ping') at.push(Date.now()) })
  return at
}

test('while the page is hidden an unanswered ping does not close the link', async (t) => {
  const page = stubDocument(t, 'hidden')
  const server = await fakeServer(t) // never answers a ping: what throttled timers would look like
  const client = createClient(server.url, { heartbeat: { interval: 20, timeout: 40 }, reconnect: { base: 1, cap: 5 } })
  t.after(() => client.close())
  const closes = record(client, ['close'])
  await opened(client)
  const link = await server.link(0)
  const seen = pings(link)
  await sleep(300)
  t.same(closes, [], 'no dead link declared while hidden')
  t.equal(server.links.length, 1)
  t.ok(seen.length >= 1, 'pings still went out')

  // visible again: a ping at once, and a whole timeout for its pong
  const shown = Date.now()
  const closed = nextEvent(client, 'close', () => true, 2000)
  page.show('visible')
  await until(() => seen.some((at) => at >= shown), 1000, 'the ping on becoming visible')
  t.equal(seen.filter((at) => at >= shown).length, 1, 'one ping, sent on the visibilitychange (the interval sends none while one is unanswered)')
  t.same(await closed, { code: 1006, reason: 'heartbeat timeout' }, 'still no pong: now it is a dead link')
  t.ok(Date.now() - shown >= 35, 'after a fresh timeout')
})

test('becoming visible with a live link: the ping is answered and the link stays', async (t) => {
  const page = stubDocument(t, 'hidden')
  let answering = false
  const server = await fakeServer(t, (link) => {
    link.socket.on('message', (raw) => {
      if (answering && JSON.parse(raw.toString()).type === 'ping') link.send({ type: 'pong' })
    })
  })
  const client = createClient(server.url, { heartbeat: { interval: 20, timeout: 500 }, reconnect: { base: 1, cap: 5 } })
  t.after(() => client.close())
  const closes = record(client, ['close'])
  await opened(client)
  await sleep(100)
  answering = true
  page.show('visible')
  await sleep(700)
  t.same(closes, [], 'answered: no close')
  t.equal(server.links.length, 1)
})

test('hiding the page while a pong is awaited lifts the deadline', async (t) => {
  const page = stubDocument(t, 'visible')
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: { interval: 20, timeout: 300 }, reconnect: { base: 1, cap: 5 } })
  t.after(() => client.close())
  const closes = record(client, ['close'])
  await opened(client)
  const seen = pings(await server.link(0))
  await until(() => seen.length === 1, 1000, 'the first ping')
  page.show('hidden')
  await sleep(500)
  t.same(closes, [], 'the deadline armed while visible did not fire once hidden')
})

test('without a document (Node) a missing pong is a dead link, as before', async (t) => {
  t.equal((globalThis as { document?: unknown }).document, undefined)
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: { interval: 20, timeout: 40 }, reconnect: false })
  t.after(() => client.close())
  t.same(await nextEvent(client, 'close', () => true, 2000), { code: 1006, reason: 'heartbeat timeout' })
})

test('a visibilitychange after the client closed does nothing', async (t) => {
  const page = stubDocument(t, 'visible')
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: { interval: 20, timeout: 40 } })
  await opened(client)
  const seen = pings(await server.link(0))
  await client.close()
  page.show('hidden')
  page.show('visible')
  await sleep(50)
  t.same(seen, [], 'no ping from a closed client')
})

test('a deadline that fires while the page is hidden proves nothing', async (t) => {
  const page = stubDocument(t, 'visible')
  const server = await fakeServer(t)
  const client = createClient(server.url, { heartbeat: { interval: 20, timeout: 60 }, reconnect: { base: 1, cap: 5 } })
  t.after(() => client.close())
  const closes = record(client, ['close'])
  await opened(client)
  const seen = pings(await server.link(0))
  await until(() => seen.length === 1, 1000, 'the first ping')
  // hidden with no event yet, as when a throttled tab runs its timers late
  page.visibilityState = 'hidden'
  await sleep(200)
  t.same(closes, [])
  t.ok(seen.length >= 2, 'the next interval pinged again')
})
