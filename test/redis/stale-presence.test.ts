// Stale presence after a crash (issue 11, server item 8): member hashes carry a
// TTL that live instances refresh, and when an instance dies without closing,
// one survivor removes its members and announces each one's leave, once, to
// every instance.
import t from 'tap'
import { hub, sleep } from '../helpers.js'
import { connId, join, ofType, redisClient, requireRedis, startInstance, uniquePrefix, until, type Instance } from './support.js'

const TTL = 600
const FAST = { adapter: { heartbeatInterval: 150, instanceTtl: TTL } }

/** A crash: the instance's Redis connections drop without a word; nothing is cleaned up, its heartbeat stops reaching Redis. */
function crash (instance: Instance): void {
  instance.adapter.client.disconnect()
  instance.adapter.subscriber.disconnect()
}

function ownerOf (instance: Instance): string {
  return `${hub(instance.app).instanceId}.0`
}

if (await requireRedis(t)) {
  t.test('members:<room> hashes carry a TTL that live instances keep refreshing', async (t) => {
    const prefix = uniquePrefix(t)
    const a = await startInstance(t, prefix, FAST)
    const alice = await a.client('alice')
    await join(alice, 'room')
    const redis = redisClient(t)
    const key = `${prefix}:members:room`
    const first = await redis.pttl(key)
    t.ok(first > 0 && first <= 3 * TTL, `a TTL from the first join (${first} ms, at most 3 x instanceTtl)`)
    await sleep(4 * TTL)
    t.equal(await redis.hexists(key, connId(a.app, 'alice')), 1, 'still there after longer than its TTL: refreshed')
    t.ok(await redis.pttl(key) > 3 * TTL - 400, 'refreshed on each heartbeat')
  })

  t.test('a crashed instance with no survivor: its hashes and records expire', async (t) => {
    const prefix = uniquePrefix(t)
    const lone = await startInstance(t, prefix, FAST)
    const dave = await lone.client('dave')
    await join(dave, 'solo')
    const redis = redisClient(t)
    const owner = ownerOf(lone)
    t.equal(await redis.exists(`${prefix}:members:solo`, `${prefix}:owned:${owner}`), 2)
    crash(lone)
    const elapsed = await until(async () => await redis.exists(`${prefix}:members:solo`, `${prefix}:owned:${owner}`, `${prefix}:instances`) === 0,
      3 * TTL + 1500, 'the keys to expire')
    t.ok(elapsed <= 3 * TTL + 1500, `members:solo, owned:<owner> and instances gone ${elapsed} ms after the crash (TTL ${3 * TTL} ms)`)
  })

  t.test('a crash: one survivor announces each member\'s leave once, to every instance, and removes the entries', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b, c] = await Promise.all([startInstance(t, prefix, FAST), startInstance(t, prefix, FAST), startInstance(t, prefix, FAST)])
    const alice = await a.client('alice', '/presence')
    const bob = await b.client('bob', '/presence')
    const plain = await b.client('pat', '/chat') // in the room through a route without presence: it hears presence events all the same
    const carol = await c.client('carol', '/presence')
    const carol2 = await c.client('carol2', '/presence')
    await join(alice, 'room')
    await join(bob, 'room')
    await join(plain, 'room')
    await join(carol, 'room')
    await join(carol2, 'room')
    await join(carol, 'side')
    await join(alice, 'side')
    const carolId = connId(c.app, 'carol')
    const carol2Id = connId(c.app, 'carol2')
    await until(() => ofType(alice, 'presence').length === 3 && ofType(bob, 'presence').length === 2 && ofType(plain, 'presence').length === 2, 2000, 'the joins to be heard')

    const redis = redisClient(t)
    const watcher = redisClient(t)
    const announcements: string[] = []
    await watcher.subscribe(`${prefix}:left`)
    watcher.on('message', (_channel: string, message: string) => { announcements.push(message) })

    crash(c)
    const crashedAt = Date.now()
    const leave = (room: string, id: string, sub: string): unknown => ({ type: 'presence', room, data: { event: 'leave', member: { id, sub } } })
    const leaves = (inbox: typeof alice): unknown[] => ofType(inbox, 'presence').filter((m) => m.data.event === 'leave')
    await until(() => leaves(alice).length === 3 && leaves(bob).length === 2 && leaves(plain).length === 2, 3 * TTL + 1000, 'the leaves to be announced')
    const elapsed = Date.now() - crashedAt
    t.ok(elapsed <= TTL + 600, `announced ${elapsed} ms after the crash (instanceTtl ${TTL} ms, heartbeat 150 ms)`)
    const byId = (x: any, y: any): number => `${x.room}${x.data.member.id}`.localeCompare(`${y.room}${y.data.member.id}`)
    t.same(leaves(alice).sort(byId), [leave('room', carolId, 'carol'), leave('room', carol2Id, 'carol2'), leave('side', carolId, 'carol')].sort(byId),
      'alice (on A) hears each of C\'s members leave each room she shares with them')
    t.same(leaves(bob).sort(byId), [leave('room', carolId, 'carol'), leave('room', carol2Id, 'carol2')].sort(byId), 'bob (on B) too')

    // long enough for every survivor to have looked several times
    await sleep(3 * TTL)
    t.equal(leaves(alice).length, 3, 'exactly once: no survivor announced them again')
    t.equal(leaves(bob).length, 2)
    t.equal(announcements.length, 3, 'one announcement per member and room on the left channel, from one survivor')
    t.same(leaves(plain).sort(byId), leaves(bob), 'a member that joined through a route without presence hears them as it heard the joins')

    const members = (await a.app.realtime.members('room')).map((m) => m.sub).sort()
    t.same(members, ['alice', 'bob', 'pat'])
    t.same(Object.keys(await redis.hgetall(`${prefix}:members:room`)).sort(), [connId(a.app, 'alice'), connId(b.app, 'bob'), connId(b.app, 'pat')].sort(),
      'the dead entries are gone from Redis')
    t.same(Object.keys(await redis.hgetall(`${prefix}:members:side`)), [connId(a.app, 'alice')])
    t.equal(await redis.exists(`${prefix}:owned:${ownerOf(c)}`), 0, 'and so is its record')
    t.notOk((await redis.smembers(`${prefix}:instances`)).includes(ownerOf(c)), 'it is no longer listed')
    t.ok((await redis.smembers(`${prefix}:instances`)).includes(ownerOf(a)), 'the survivors are')
  })

  t.test('a clean close announces nothing more: its members left one by one', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([startInstance(t, prefix, FAST), startInstance(t, prefix, FAST)])
    const alice = await a.client('alice', '/presence')
    const bob = await b.client('bob', '/presence')
    await join(alice, 'room')
    await join(bob, 'room')
    await until(() => ofType(alice, 'presence').length === 1, 2000, 'bob\'s join')
    const redis = redisClient(t)
    await b.app.close()
    await until(() => ofType(alice, 'presence').length === 2, 2000, 'bob\'s leave')
    await sleep(2 * TTL)
    t.equal(ofType(alice, 'presence').length, 2, 'one leave, from the close itself')
    t.same(await redis.smembers(`${prefix}:instances`), [ownerOf(a)], 'the closed instance unlisted itself')
    t.equal(await redis.exists(`${prefix}:owned:${ownerOf(b)}`), 0)
  })

  t.test('an instance whose liveness key lapsed (a stall) is announced gone, then registers its members again on its next heartbeat', async (t) => {
    const prefix = uniquePrefix(t)
    // A looks for dead instances every 150 ms; B refreshes its key every second
    const [a, b] = await Promise.all([startInstance(t, prefix, FAST), startInstance(t, prefix, { adapter: { heartbeatInterval: 1000, instanceTtl: 3000 } })])
    const alice = await a.client('alice', '/presence')
    const bob = await b.client('bob', '/presence')
    await join(alice, 'room')
    await join(bob, 'room')
    const bobId = connId(b.app, 'bob')
    const redis = redisClient(t)
    const key = `${prefix}:instance:${ownerOf(b)}`
    // right after one of B's heartbeats, B's key goes, as if B had stalled past its TTL
    await until(async () => await redis.pttl(key) > 2950, 3000, 'a heartbeat of B')
    await redis.del(key)
    await until(() => ofType(alice, 'presence').some((m) => m.data.event === 'leave'), 900, 'A to announce bob gone')
    t.same(ofType(alice, 'presence').at(-1), { type: 'presence', room: 'room', data: { event: 'leave', member: { id: bobId, sub: 'bob' } } })
    t.same((await a.app.realtime.members('room')).map((m) => m.sub), ['alice'], 'for A, bob is gone')
    await sleep(100)
    t.same(ofType(bob, 'presence').filter((m) => m.data.event === 'leave'), [], 'bob is not told he left')

    await until(async () => (await a.app.realtime.members('room')).length === 2, 2000, 'B to register bob again')
    t.same((await a.app.realtime.members('room')).map((m) => m.sub).sort(), ['alice', 'bob'], 'bob is listed again')
    const owner = JSON.parse(await redis.hget(`${prefix}:members:room`, bobId) as string)[0]
    t.equal(owner, `${hub(b.app).instanceId}.1`, 'under a new epoch of B')
    t.ok((await redis.smembers(`${prefix}:instances`)).includes(owner), 'which is listed')
    t.equal(await redis.exists(`${prefix}:instance:${owner}`), 1, 'and alive')
  })
}
