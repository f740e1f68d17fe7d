import t from 'tap'
import { hub, sleep, type Inbox } from '../helpers.js'
import { join, ofType, privateRedis, redisClient, requireRedis, requireRedisServer, startInstance, uniquePrefix, until } from './support.js'

// SPEC section 10 when Redis goes away: local delivery without offsets while it
// is unreachable, then every missed message once, in order (or resync).

const offsetsOf = (inbox: Inbox, type = 'm'): number[] => ofType(inbox, type).filter((m) => m.offset !== undefined).map((m) => m.offset)
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)
const lines = (logs: any[], pattern: RegExp): any[] => logs.filter((line) => typeof line.msg === 'string' && pattern.test(line.msg))

/** Broadcast to `room` from `app` every few ms until stopped; returns how many were sent. */
function pump (broadcast: (n: number) => void): { stop: () => number } {
  let running = true
  let sent = 0
  const tick = (): void => {
    if (!running) return
    broadcast(++sent)
    setTimeout(tick, 2)
  }
  tick()
  return { stop: () => { running = false; return sent } }
}

if (await requireRedis(t)) {
  t.test('an instance cut off from Redis for 2 s during traffic: local-only delivery meanwhile, then every missed message once, in order', async (t) => {
    const prefix = uniquePrefix(t)
    // B's own connections, reconnecting 2 s after they are cut
    const slow = { retryStrategy: () => 2000 }
    const client = redisClient(t, undefined, slow)
    const subscriber = redisClient(t, undefined, slow)
    const ids = await Promise.all([client.client('ID'), subscriber.client('ID')])
    const logs: any[] = []
    const history = { history: { size: 10_000 } }
    const [a, b] = await Promise.all([
      startInstance(t, prefix, { realtime: history }),
      startInstance(t, prefix, { realtime: history, adapter: { client, subscriber, url: undefined }, logs })
    ])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    const { epoch } = (await join(alice, 'r')).data
    await join(bob, 'r')
    const traffic = pump((n) => a.app.realtime.broadcast('r', 'm', n))
    await until(() => offsetsOf(bob).length >= 20, 5000, 'traffic to reach B')

    const admin = redisClient(t)
    for (const id of ids) await admin.client('KILL', 'ID', String(id))
    await until(() => !b.adapter.connected, 2000, 'B to notice')

    // meanwhile on B: its own broadcasts reach its members at once, without an offset, not kept, counted
    for (let i = 0; i < 5; i++) b.app.realtime.broadcast('r', 'local', i)
    await bob.next((m) => m.type === 'local' && m.data === 4)
    // written after everything B delivered before the cut: bob holds all of that now
    const bobHad = Math.max(...offsetsOf(bob))
    t.same(ofType(bob, 'local').map((m) => Object.keys(m)), Array(5).fill(['type', 'room', 'data']), 'no offset')
    t.equal(hub(b.app).dropsByReason().history_unavailable, 5, 'counted as history_unavailable')
    t.ok(b.app.realtime.stats().drops >= 5, 'and in stats().drops')
    t.equal(lines(logs, /history store cannot be reached/).length, 1, 'logged once')
    await t.rejects(b.app.realtime.history('r'), { code: 'FST_REALTIME_ADAPTER_UNAVAILABLE' }, 'history() cannot answer without Redis')
    // a join on B now is answered with what B knows
    const carol = await b.client('carol')
    const carolAck = (await carol.request({ type: 'join', room: 'r', id: 1, data: { since: { offset: bobHad, epoch } } })).data
    t.same(carolAck, { room: 'r', offset: bobHad, epoch, recovered: true }, 'B knows where r stands: nothing missed as far as it can tell')

    await until(() => b.adapter.connected, 8000, 'B to reconnect')
    await sleep(300) // traffic goes on after the reconnection
    const sent = traffic.stop()
    await until(async () => (await a.app.realtime.history('r')).offset === sent, 5000, 'every broadcast of A to be sequenced')
    await until(() => Math.max(...offsetsOf(bob)) === sent && Math.max(0, ...offsetsOf(carol)) === sent, 8000, 'B\'s members to catch up')
    t.same(offsetsOf(bob), range(1, sent), `bob: all ${sent} offsets once, in order, across the outage`)
    t.same(offsetsOf(carol), range(bobHad + 1, sent), 'carol, who joined during the outage, too')
    t.same(offsetsOf(alice), range(1, sent), 'alice on A never missed one')
    t.equal(ofType(alice, 'local').length, 0, 'B\'s broadcasts during the outage stayed on B')
    t.equal(ofType(bob, 'resync').length, 0, 'everything missed was still kept: no resync')
  })

  t.test('an instance that missed more than history keeps sends resync with the latest offset, then live', async (t) => {
    const prefix = uniquePrefix(t)
    const slow = { retryStrategy: () => 1000 }
    const client = redisClient(t, undefined, slow)
    const subscriber = redisClient(t, undefined, slow)
    const ids = await Promise.all([client.client('ID'), subscriber.client('ID')])
    const history = { history: { size: 5 } }
    const [a, b] = await Promise.all([
      startInstance(t, prefix, { realtime: history }),
      startInstance(t, prefix, { realtime: history, adapter: { client, subscriber, url: undefined } })
    ])
    const bob = await b.client('bob')
    const { epoch } = (await join(bob, 'r')).data
    a.app.realtime.broadcast('r', 'm', 1)
    await bob.next((m) => m.offset === 1)
    const admin = redisClient(t)
    for (const id of ids) await admin.client('KILL', 'ID', String(id))
    await until(() => !b.adapter.connected, 2000, 'B to notice')
    for (let i = 2; i <= 20; i++) a.app.realtime.broadcast('r', 'm', i)
    await until(async () => (await a.app.realtime.history('r')).offset === 20, 2000, 'A to sequence them')
    await until(() => b.adapter.connected, 5000, 'B to reconnect')
    t.same(await bob.type('resync'), { type: 'resync', room: 'r', data: { epoch, offset: 20 } }, 'resync: reload, then live from 20')
    a.app.realtime.broadcast('r', 'm', 21)
    await bob.next((m) => m.offset === 21)
    t.same(bob.messages.filter((m) => m.type !== 'ack').map((m) => m.offset ?? m.type), [1, 'resync', 21])
  })

  t.test('Redis stopped (SIGSTOP) for 2 s during traffic from both instances: every member gets every offset once, in order', async (t) => {
    if (!requireRedisServer(t)) return
    const redis = await privateRedis(t)
    const prefix = uniquePrefix(t, redis.url)
    const history = { history: { size: 10_000 } }
    const [a, b] = await Promise.all([
      startInstance(t, prefix, { realtime: history, adapter: { url: redis.url } }),
      startInstance(t, prefix, { realtime: history, adapter: { url: redis.url } })
    ])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    await join(alice, 'r')
    await join(bob, 'r')
    let from = 0
    const traffic = pump((n) => { (from++ % 2 === 0 ? a : b).app.realtime.broadcast('r', 'm', n) })
    await until(() => offsetsOf(bob).length >= 20, 5000, 'traffic')
    redis.pause()
    t.after(() => redis.resume())
    await sleep(2000)
    redis.resume()
    await sleep(300)
    const sent = traffic.stop()
    // what was broadcast while a connection was not ready went local-only (counted); the rest was sequenced
    await until(async () => {
      const latest = (await a.app.realtime.history('r')).offset
      return Math.max(...offsetsOf(alice)) === latest && Math.max(...offsetsOf(bob)) === latest
    }, 10_000, 'both to hold the latest offset')
    const latest = (await a.app.realtime.history('r')).offset
    const unkept = hub(a.app).dropsByReason().history_unavailable + hub(b.app).dropsByReason().history_unavailable
    t.equal(latest + unkept, sent, `${latest} sequenced + ${unkept} delivered without offset = ${sent} broadcasts`)
    t.same(offsetsOf(alice), range(1, latest), 'alice: every offset once, in order')
    t.same(offsetsOf(bob), range(1, latest), 'bob: every offset once, in order')
  })

  t.test('Redis restarted empty: a new epoch; members on every instance get resync 0, then the new offsets', async (t) => {
    if (!requireRedisServer(t)) return
    const redis = await privateRedis(t)
    const prefix = uniquePrefix(t, redis.url)
    const history = { history: { size: 100 } }
    const [a, b] = await Promise.all([
      startInstance(t, prefix, { realtime: history, adapter: { url: redis.url } }),
      startInstance(t, prefix, { realtime: history, adapter: { url: redis.url } })
    ])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    const { epoch } = (await join(alice, 'r')).data
    await join(bob, 'r')
    a.app.realtime.broadcast('r', 'm', 1)
    await bob.next((m) => m.offset === 1)
    await redis.kill()
    await until(() => !a.adapter.connected && !b.adapter.connected, 3000, 'both to notice')
    await redis.start() // empty: the data is lost
    await until(() => a.adapter.connected && b.adapter.connected, 8000, 'both to reconnect')
    b.app.realtime.broadcast('r', 'm', 2)
    for (const inbox of [alice, bob]) {
      const resync = await inbox.type('resync')
      t.not(resync.data.epoch, epoch, 'a new epoch')
      t.same(await inbox.next((m) => m.type === 'm' && m.data === 2), { type: 'm', room: 'r', data: 2, offset: 1 })
      t.same(inbox.messages.filter((m) => m.type === 'm' || m.type === 'resync').map((m) => m.type === 'resync' ? `resync:${m.data.offset}` : m.offset), [1, 'resync:0', 1])
    }
  })
}
