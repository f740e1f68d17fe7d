import t from 'tap'
import { sleep } from '../helpers.js'
import { connId, join, ofType, redisClient, requireRedis, startInstance, uniquePrefix, until } from './support.js'

type Member = { id: string, sub: string | null }

function sorted (members: Member[]): Member[] {
  return [...members].sort((x, y) => x.id.localeCompare(y.id))
}

if (await requireRedis(t)) {
  t.test('members() spans instances and follows joins, leaves and closes', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b, c] = await Promise.all([startInstance(t, prefix), startInstance(t, prefix), startInstance(t, prefix)])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    const carol = await c.client('carol')
    await Promise.all([join(alice, 'room'), join(bob, 'room'), join(carol, 'room')])
    const everyone = sorted([
      { id: connId(a.app, 'alice'), sub: 'alice' },
      { id: connId(b.app, 'bob'), sub: 'bob' },
      { id: connId(c.app, 'carol'), sub: 'carol' }
    ])
    for (const instance of [a, b, c]) t.same(sorted(await instance.app.realtime.members('room')), everyone)

    t.equal((await bob.request({ type: 'leave', room: 'room', id: 'l' })).type, 'ack')
    const withoutBob = everyone.filter((m) => m.sub !== 'bob')
    t.same(sorted(await a.app.realtime.members('room')), withoutBob, 'a leave is seen by the others at once')

    carol.ws.close()
    await until(async () => (await a.app.realtime.members('room')).length === 1, 2000, 'carol to be gone')
    t.same(await a.app.realtime.members('room'), [{ id: connId(a.app, 'alice'), sub: 'alice' }])
    t.same(await b.app.realtime.members('room'), [{ id: connId(a.app, 'alice'), sub: 'alice' }], 'B sees only A\'s member')
    t.same(await b.app.realtime.members('nobody-here'), [])
  })

  t.test('presence join and leave reach members on every instance', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b, c] = await Promise.all([startInstance(t, prefix), startInstance(t, prefix), startInstance(t, prefix)])
    const alice = await a.client('alice', '/presence')
    const carol = await c.client('carol', '/presence')
    await join(alice, 'room')
    await join(carol, 'room')
    const carolId = connId(c.app, 'carol')
    t.same(await alice.type('presence'), { type: 'presence', room: 'room', data: { event: 'join', member: { id: carolId, sub: 'carol' } } })

    const bob = await b.client('bob', '/presence')
    const ack = await join(bob, 'room')
    const bobId = connId(b.app, 'bob')
    t.same(
      sorted(ack.data.members),
      sorted([{ id: connId(a.app, 'alice'), sub: 'alice' }, { id: bobId, sub: 'bob' }, { id: carolId, sub: 'carol' }]),
      'the join ack lists the members on every instance'
    )
    const bobJoined = { type: 'presence', room: 'room', data: { event: 'join', member: { id: bobId, sub: 'bob' } } }
    t.same(await alice.type('presence'), bobJoined, 'A heard B\'s join')
    t.same(await carol.type('presence'), bobJoined, 'C heard B\'s join')

    t.equal((await bob.request({ type: 'leave', room: 'room', id: 'l' })).type, 'ack')
    const bobLeft = { type: 'presence', room: 'room', data: { event: 'leave', member: { id: bobId, sub: 'bob' } } }
    t.same(await alice.type('presence'), bobLeft)
    t.same(await carol.type('presence'), bobLeft)

    carol.ws.close()
    t.same(await alice.type('presence'), { type: 'presence', room: 'room', data: { event: 'leave', member: { id: carolId, sub: 'carol' } } }, 'a closed socket leaves everywhere')

    a.app.realtime.broadcast('room', 'sentinel')
    await alice.type('sentinel')
    t.equal(ofType(bob, 'presence').filter((m) => m.data.member.id === bobId).length, 0, 'the joiner is not told about itself')
    t.equal(ofType(alice, 'presence').length, 4, 'each event arrived once')
  })

  t.test('a crashed instance\'s members disappear within instanceTtl', async (t) => {
    const prefix = uniquePrefix(t)
    const ttl = 600
    const options = { adapter: { heartbeatInterval: 150, instanceTtl: ttl } }
    const [a, crashing] = await Promise.all([startInstance(t, prefix, options), startInstance(t, prefix, options)])
    const alice = await a.client('alice')
    const dave = await crashing.client('dave')
    await join(alice, 'room')
    await join(dave, 'room')
    const daveId = connId(crashing.app, 'dave')
    t.equal((await a.app.realtime.members('room')).length, 2)

    // the heartbeat keeps a live instance listed well past its TTL
    await sleep(ttl + 200)
    t.equal((await a.app.realtime.members('room')).length, 2, 'a live instance stays listed past one TTL')

    // a crash: its Redis connections drop without a word, nothing is cleaned up
    crashing.adapter.client.disconnect()
    crashing.adapter.subscriber.disconnect()
    const crashedAt = Date.now()
    const redis = redisClient(t)
    t.equal(await redis.hexists(`${prefix}:members:room`, daveId), 1, 'its entry is still in Redis')
    await until(async () => (await a.app.realtime.members('room')).length === 1, ttl + 1000, 'dave to disappear')
    const elapsed = Date.now() - crashedAt
    t.ok(elapsed <= ttl + 200, `gone ${elapsed} ms after the crash (bound ${ttl} ms)`)
    t.same(await a.app.realtime.members('room'), [{ id: connId(a.app, 'alice'), sub: 'alice' }])
    await until(async () => await redis.hexists(`${prefix}:members:room`, daveId) === 0, 1000, 'the dead entry to be removed')
    t.pass('the dead entry was removed from Redis')
  })
}
