import t from 'tap'
import { connect, sign, sleep, type Inbox } from '../helpers.js'
import { join, ofType, redisClient, requireRedis, startInstance, uniquePrefix, until, type Instance } from './support.js'

// SPEC section 10 with the Redis adapter: offsets, epochs and history shared by
// every instance, kept across an instance restart.

const HISTORY = { history: { size: 1000 } }

/** Join with data and return the ack's data. */
async function joinWith (inbox: Inbox, room: string, data?: unknown): Promise<any> {
  const id = `j-${Math.random()}`
  const reply = await inbox.request(data === undefined ? { type: 'join', room, id } : { type: 'join', room, id, data })
  if (reply.type !== 'ack') throw new Error(`join failed: ${JSON.stringify(reply)}`)
  return reply.data
}

const offsetsOf = (inbox: Inbox, type = 'm'): number[] => ofType(inbox, type).map((m) => m.offset)
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i)

if (await requireRedis(t)) {
  t.test('two instances share one sequence per room: every member gets 1..n once, in the same order', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([startInstance(t, prefix, { realtime: HISTORY }), startInstance(t, prefix, { realtime: HISTORY })])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    const ackA = (await join(alice, 'r')).data
    const ackB = (await join(bob, 'r')).data
    t.same([ackA.offset, ackB.offset], [0, 0])
    t.equal(ackA.epoch, ackB.epoch, 'one epoch for the room on every instance')
    for (let i = 0; i < 20; i++) {
      a.app.realtime.broadcast('r', 'm', { from: 'a', i })
      b.app.realtime.broadcast('r', 'm', { from: 'b', i })
    }
    await alice.next((m) => m.offset === 40)
    await bob.next((m) => m.offset === 40)
    t.same(offsetsOf(alice), range(1, 40))
    t.same(offsetsOf(bob), range(1, 40))
    t.same(ofType(alice, 'm').map((m) => JSON.stringify(m.data)), ofType(bob, 'm').map((m) => JSON.stringify(m.data)), 'the same message at the same offset everywhere')
    const fromA = await a.app.realtime.history('r', { limit: 3 })
    t.same(fromA, await b.app.realtime.history('r', { limit: 3 }), 'history() answers the same on both')
    t.same(fromA.messages.map((m) => m.offset), [38, 39, 40])
    t.equal(fromA.epoch, ackA.epoch)
  })

  t.test('a client resumes on the other instance: exactly what it missed, then the ack, then live', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([startInstance(t, prefix, { realtime: HISTORY }), startInstance(t, prefix, { realtime: HISTORY })])
    const alice = await a.client('alice')
    const { epoch } = (await join(alice, 'r')).data
    for (let i = 1; i <= 5; i++) a.app.realtime.broadcast('r', 'm', i)
    await alice.next((m) => m.offset === 5)
    alice.ws.terminate()
    for (let i = 6; i <= 9; i++) b.app.realtime.broadcast('r', 'm', i) // while alice is away, nobody of r on A or B
    const again = await b.client('alice')
    t.same(await joinWith(again, 'r', { since: { offset: 5, epoch } }), { room: 'r', offset: 9, epoch, recovered: true })
    t.same(again.messages.map((m) => m.offset ?? m.type), [6, 7, 8, 9, 'ack'])
    t.same(again.messages[0], { type: 'm', room: 'r', data: 6, offset: 6 })
    a.app.realtime.broadcast('r', 'm', 10)
    await again.next((m) => m.offset === 10)
    t.same(offsetsOf(again), [6, 7, 8, 9, 10])
    const fresh = await a.client('carol')
    await joinWith(fresh, 'r', { history: 3 })
    t.same(fresh.messages.map((m) => m.offset ?? m.type), [8, 9, 10, 'ack'], 'history: n from Redis')
  })

  t.test('an instance restart keeps offsets, epoch and history; a client resumes on the new one', async (t) => {
    const prefix = uniquePrefix(t)
    const first = await startInstance(t, prefix, { realtime: HISTORY })
    for (let i = 1; i <= 5; i++) first.app.realtime.broadcast('r', 'm', i)
    const before = await first.app.realtime.history('r')
    t.equal(before.offset, 5)
    await first.app.close()
    const second = await startInstance(t, prefix, { realtime: HISTORY })
    const after = await second.app.realtime.history('r')
    t.same(after, before, 'the same epoch, offset and messages')
    const alice = await second.client('alice')
    t.same(await joinWith(alice, 'r', { since: { offset: 3, epoch: before.epoch } }), { room: 'r', offset: 5, epoch: before.epoch, recovered: true })
    t.same(offsetsOf(alice), [4, 5])
    second.app.realtime.broadcast('r', 'm', 6)
    t.equal((await alice.type('m')).offset, 6, 'offsets go on where they were')
  })

  t.test('an instance restarted during traffic: the other instance\'s members see every offset once, in order', async (t) => {
    const prefix = uniquePrefix(t)
    const b = await startInstance(t, prefix, { realtime: HISTORY })
    let a: Instance = await startInstance(t, prefix, { realtime: HISTORY })
    const bob = await b.client('bob')
    const { epoch } = (await join(bob, 'r')).data
    const alice = await a.client('alice')
    await join(alice, 'r')
    let running = true
    let sent = 0
    const pump = (): void => {
      if (!running) return
      // both instances publish; while A restarts, only B does
      const from = sent % 2 === 0 && a.app.realtime.draining === false ? a : b
      from.app.realtime.broadcast('r', 'm', ++sent)
      setTimeout(pump, 1)
    }
    pump()
    await sleep(150)
    const aliceSince = () => Math.max(0, ...offsetsOf(alice))
    const closing = a.app.close()
    await closing
    const aliceHad = aliceSince()
    a = await startInstance(t, prefix, { realtime: HISTORY })
    const again = await a.client('alice')
    const ack = await joinWith(again, 'r', { since: { offset: aliceHad, epoch } })
    t.equal(ack.recovered, true, 'alice resumes on the restarted instance')
    await sleep(150)
    running = false
    await until(() => Math.max(0, ...offsetsOf(bob)) >= sent - 0, 10_000, 'bob to get the last one')
    const total = Math.max(...offsetsOf(bob))
    t.same(offsetsOf(bob), range(1, total), `bob: ${total} offsets, once each, in order`)
    await until(() => Math.max(0, ...offsetsOf(again)) >= total, 10_000, 'alice to get the last one')
    t.same([...offsetsOf(alice).filter((o) => o <= aliceHad), ...offsetsOf(again)], range(1, total), 'alice: before the restart, then resumed, nothing twice')
  })

  t.test('history lost in Redis: a new epoch; members get resync with offset 0 before its first message', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([startInstance(t, prefix, { realtime: HISTORY }), startInstance(t, prefix, { realtime: HISTORY })])
    const alice = await a.client('alice')
    const bob = await b.client('bob')
    const { epoch } = (await join(alice, 'r')).data
    await join(bob, 'r')
    a.app.realtime.broadcast('r', 'm', 1)
    a.app.realtime.broadcast('r', 'm', 2)
    await bob.next((m) => m.offset === 2)
    const admin = redisClient(t)
    await admin.del(`${prefix}:hmeta:r`, `${prefix}:history:r`) // what a Redis that lost its data looks like to this room
    b.app.realtime.broadcast('r', 'm', 3)
    const resync = await alice.type('resync')
    t.equal(resync.room, 'r')
    t.not(resync.data.epoch, epoch)
    t.equal(resync.data.offset, 0)
    t.same(await bob.type('resync'), resync, 'on every instance')
    t.same(await alice.type('m'), { type: 'm', room: 'r', data: 3, offset: 1 }, 'then the new epoch from 1')
    const page = await a.app.realtime.history('r')
    t.same([page.epoch, page.offset], [resync.data.epoch, 1])
    const carol = await a.client('carol')
    t.same(await joinWith(carol, 'r', { since: { offset: 2, epoch } }), { room: 'r', offset: 1, epoch: resync.data.epoch, recovered: false }, 'the old epoch cannot be resumed')
  })

  t.test('Redis keeps at least size, and a join never gets more than size back; ttl expires messages, not the counter', async (t) => {
    const prefix = uniquePrefix(t)
    const a = await startInstance(t, prefix, { realtime: { history: { size: 3, ttl: 1000 } } })
    for (let i = 1; i <= 10; i++) a.app.realtime.broadcast('r', 'm', i)
    await until(async () => (await a.app.realtime.history('r')).offset === 10, 2000, 'the broadcasts to be kept')
    const admin = redisClient(t)
    t.ok(await admin.xlen(`${prefix}:history:r`) >= 3, 'at least size kept')
    t.same((await a.app.realtime.history('r')).messages.map((m) => m.offset), [8, 9, 10], 'history() reads the last size')
    const alice = await a.client('alice')
    const { epoch } = await joinWith(alice, 'r', { history: 50 })
    t.same(offsetsOf(alice), [8, 9, 10])
    const bob = await a.client('bob')
    t.equal((await joinWith(bob, 'r', { since: { offset: 6, epoch } })).recovered, false, 'more than size missed')
    t.same(offsetsOf(bob), [])
    await sleep(1100)
    t.same((await a.app.realtime.history('r')).messages, [], 'expired')
    a.app.realtime.broadcast('r', 'm', 11)
    await bob.next((m) => m.offset === 11)
    t.same((await a.app.realtime.history('r')).messages.map((m) => m.offset), [11], 'the counter goes on in the same epoch')
    t.equal(await admin.xlen(`${prefix}:history:r`), 1, 'expired entries were trimmed from the stream')
    t.ok(await admin.pttl(`${prefix}:history:r`) <= 1000, 'the stream expires with its last message')
  })

  t.test('a stream kept alive by new messages still drops its expired head (every 32nd append)', async (t) => {
    const prefix = uniquePrefix(t)
    const a = await startInstance(t, prefix, { realtime: { history: { size: 1000, ttl: 2000 } } })
    for (let i = 1; i <= 40; i++) a.app.realtime.broadcast('r', 'm', i)
    await until(async () => (await a.app.realtime.history('r')).offset === 40, 2000, 'the first 40')
    await sleep(1200)
    a.app.realtime.broadcast('r', 'm', 41) // keeps the stream from expiring as a whole
    await sleep(1000) // 1..40 are past ttl now; 41 has a second to spare
    for (let i = 42; i <= 80; i++) a.app.realtime.broadcast('r', 'm', i)
    await until(async () => (await a.app.realtime.history('r')).offset === 80, 2000, 'the next 40')
    const admin = redisClient(t)
    t.equal(await admin.xlen(`${prefix}:history:r`), 40, 'the 40 expired entries were trimmed at offset 64')
    t.same((await a.app.realtime.history('r')).messages.map((m) => m.offset), range(41, 80))
  })

  t.test('presence, send and sendToUser carry no offset across instances; except holds', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([startInstance(t, prefix, { realtime: HISTORY }), startInstance(t, prefix, { realtime: HISTORY })])
    const alice = await a.client('alice', '/presence')
    const bob = await b.client('bob', '/presence')
    await join(alice, 'r')
    await join(bob, 'r')
    const presence = await alice.type('presence')
    t.notOk('offset' in presence)
    b.app.realtime.sendToUser('alice', 'note')
    t.same(await alice.type('note'), { type: 'note' })
    const aliceId = a.app.realtime.connections()[0].id
    b.app.realtime.broadcast('r', 'm', 1, { except: aliceId })
    b.app.realtime.broadcast('r', 'm', 2)
    t.same(await alice.type('m'), { type: 'm', room: 'r', data: 2, offset: 2 }, 'excepted on another instance; the next one has the next offset')
    t.equal((await b.app.realtime.history('r')).offset, 2)
  })

  /**
   * The hard one, across instances: A broadcasts continuously while a client of
   * B leaves and joins again with `since`; B must read Redis, stitch the replay
   * to what keeps arriving from A, and leave no gap or duplicate.
   */
  t.test('broadcasts from another instance arriving continuously while a client re-joins with since: contiguous, once', async (t) => {
    const prefix = uniquePrefix(t)
    const [a, b] = await Promise.all([
      startInstance(t, prefix, { realtime: { history: { size: 10_000 }, rateLimit: { max: 100_000 } } }),
      startInstance(t, prefix, { realtime: { history: { size: 10_000 }, rateLimit: { max: 100_000 } } })
    ])
    const alice = await connect(`${b.url}/chat`, { headers: { authorization: `Bearer ${sign(b.app, 'alice')}` } })
    t.after(() => alice.ws.terminate())
    const first = await joinWith(alice, 'r')
    let running = true
    let sent = 0
    const pump = (): void => {
      if (!running) return
      a.app.realtime.broadcast('r', 'm', ++sent)
      setImmediate(pump)
    }
    pump()
    const seen: number[] = []
    const problems: string[] = []
    let next = first.offset + 1
    alice.ws.on('message', (raw) => {
      const m = JSON.parse(raw.toString())
      if (m.type !== 'm') return
      if (m.offset !== next) problems.push(`got ${m.offset}, expected ${next}`)
      seen.push(m.offset)
      next = m.offset + 1
    })
    for (let round = 0; round < 25; round++) {
      await sleep(Math.random() * 15)
      await alice.request({ type: 'leave', room: 'r', id: `leave-${round}` })
      await sleep(Math.random() * 15)
      // the only member of r on B leaves and comes back: B unsubscribes, subscribes again and reads Redis each time
      const ack = await joinWith(alice, 'r', { since: { offset: next - 1, epoch: first.epoch } })
      if (ack.recovered !== true) problems.push(`round ${round}: not recovered (${JSON.stringify(ack)})`)
    }
    running = false
    await until(async () => (await a.app.realtime.history('r')).offset === sent, 10_000, 'every broadcast to be sequenced')
    await until(() => next > sent, 10_000, 'alice to hold every offset')
    t.same(problems, [])
    t.same(seen, range(first.offset + 1, sent), `${sent} offsets, once each, in order`)
  })
}
