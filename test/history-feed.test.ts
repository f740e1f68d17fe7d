import t from 'tap'
import fc from 'fast-check'
import pino from 'pino'
import { RoomFeeds, UNKNOWN_EPOCH, type JoinHandle, type JoinRequest } from '../lib/history/feed.js'
import { withOffset, type HistoryEntry, type HistoryQuery, type HistoryRead, type HistorySink, type HistoryStore } from '../lib/history/store.js'

// RoomFeeds against a store whose reads answer when the test says so, and whose
// published messages arrive when the test says so: every interleaving of
// broadcasts, pub/sub arrivals and join reads can be played in order.

const E1 = '0000000000001-aaaaaaaa'
const E2 = '0000000000002-bbbbbbbb'

interface Member { id: string, got: any[] }

/** A history store like Redis: appends are sequenced at once, published copies arrive on `arrive()`, reads answer on `answer()`. */
class FakeStore implements HistoryStore {
  available = true
  epoch = E1
  offset = 0
  kept: HistoryEntry[] = []
  /** published, not yet arrived */
  inFlight: Array<{ epoch: string, offset: number, payload: string, except?: readonly string[] }> = []
  reads: Array<{ result: HistoryRead, resolve: (r: HistoryRead) => void, reject: (e: Error) => void }> = []
  /** answer reads at once (as the in-memory store does) */
  immediate = false
  sink!: HistorySink

  constructor (readonly size: number) {}

  attach (sink: HistorySink): void { this.sink = sink }

  append (room: string, body: string, except?: readonly string[]): boolean {
    if (!this.available) return false
    const offset = ++this.offset
    const payload = withOffset(body, offset)
    this.kept.push(except === undefined ? { offset, payload } : { offset, payload, except })
    if (this.kept.length > this.size) this.kept.shift()
    this.inFlight.push({ epoch: this.epoch, offset, payload, except })
    return true
  }

  /** Lose the room's history: a new epoch, offsets from 1 again. */
  reset (epoch: string): void {
    this.epoch = epoch
    this.offset = 0
    this.kept = []
  }

  /** Deliver the next `n` published copies (all by default), in order. */
  arrive (n = Infinity): void {
    while (n-- > 0 && this.inFlight.length > 0) {
      const m = this.inFlight.shift()!
      this.sink.sequenced('r', m.epoch, m.offset, m.payload, m.except)
    }
  }

  /** Published copies that never arrive (a subscriber that was cut off). */
  lose (n = Infinity): void {
    this.inFlight.splice(0, n)
  }

  read (_room: string, query: HistoryQuery): HistoryRead | Promise<HistoryRead> {
    if (!this.available) throw new Error('unreachable')
    // the read happens now; its answer travels later
    let entries: HistoryEntry[]
    if ('after' in query) entries = this.kept.filter((e) => e.offset > query.after).slice(0, query.limit)
    else entries = query.last === 0 ? [] : this.kept.slice(-query.last)
    const result = { epoch: this.epoch, offset: this.offset, entries }
    if (this.immediate) return result
    return new Promise((resolve, reject) => { this.reads.push({ result, resolve, reject }) })
  }

  /** Answer the oldest pending read. */
  async answer (): Promise<void> {
    const read = this.reads.shift()
    if (read === undefined) throw new Error('no read pending')
    read.resolve(read.result)
    await settle()
  }

  async fail (): Promise<void> {
    this.reads.shift()?.reject(new Error('lost'))
    await settle()
  }

  close (): void {}
}

async function settle (): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

function setup (size = 100) {
  const store = new FakeStore(size)
  const members = new Set<Member>()
  const unkept: string[] = []
  const feeds = new RoomFeeds<Member>({
    membersOf: (room) => room === 'r' && members.size > 0 ? members : undefined,
    writeFrame: (conn, _frame, payload) => { conn.got.push(JSON.parse(payload)); return true },
    deliverUnkept: (_room, payload) => { unkept.push(payload) },
    log: pino({ level: 'silent' })
  }, store, { size, ttl: 60_000, rooms: () => true }, 1000)
  store.attach(feeds)
  t.teardown(() => feeds.close())
  let n = 0
  const broadcast = (except?: string[]): void => { store.append('r', `{"type":"m","room":"r","data":${++n}`, except) }
  /** What dispatch does: the member is in the room, the join reads, then the ack is written and live delivery released. */
  const join = async (member: Member, request: JoinRequest = {}): Promise<JoinHandle> => {
    members.add(member)
    const result = feeds.join(member, 'r', request)
    const handle = result instanceof Promise ? await result : result
    member.got.push({ type: 'ack', data: handle.ack })
    handle.release()
    return handle
  }
  const leave = (member: Member): void => {
    members.delete(member)
    feeds.left(member, 'r', members.size === 0)
  }
  return { store, feeds, members, broadcast, join, leave, unkept }
}

const member = (id: string): Member => ({ id, got: [] })
/** A member's stream, compact: offsets as numbers, `ack:<offset>`, `resync:<epoch>:<offset>`. */
const stream = (m: Member): Array<number | string> => m.got.map((x) =>
  x.type === 'ack' ? `ack:${x.data.offset}` : x.type === 'resync' ? `resync:${x.data.epoch === E2 ? 'E2' : x.data.epoch === E1 ? 'E1' : x.data.epoch}:${x.data.offset}` : x.offset)

t.test('the first join of a room gives the feed its epoch; live messages then flow in order', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const joining = join(a)
  await store.answer()
  const handle = await joining
  t.same(handle.ack, { offset: 0, epoch: E1 })
  broadcast()
  broadcast()
  store.arrive()
  t.same(stream(a), ['ack:0', 1, 2])
  t.same(a.got[1], { type: 'm', room: 'r', data: 1, offset: 1 })
})

t.test('broadcasts arriving while a join reads: replay, ack, then exactly the later ones', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  for (let i = 0; i < 5; i++) broadcast()
  store.arrive()
  const b = member('b')
  const joining = join(b, { since: { offset: 2, epoch: E1 } }) // read taken at 5
  broadcast()
  broadcast()
  store.arrive() // 6 and 7 arrive while b's read is on its way
  t.same(stream(b), [], 'nothing reaches b before its replay')
  await store.answer()
  t.same((await joining).ack, { offset: 5, epoch: E1, recovered: true })
  broadcast()
  store.arrive()
  t.same(stream(b), [3, 4, 5, 'ack:5', 6, 7, 8])
  t.same(stream(a), ['ack:0', 1, 2, 3, 4, 5, 6, 7, 8], 'the member already in saw nothing twice')
})

t.test('a read that is ahead of live delivery: what it replayed is not sent again when it arrives live', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  for (let i = 0; i < 5; i++) broadcast()
  store.arrive(3) // 4 and 5 still on their way
  const b = member('b')
  const joining = join(b, { since: { offset: 1, epoch: E1 } })
  await store.answer() // read at 5
  t.same((await joining).ack, { offset: 5, epoch: E1, recovered: true })
  store.arrive() // 4, 5 arrive late
  broadcast()
  store.arrive()
  t.same(stream(b), [2, 3, 4, 5, 'ack:5', 6])
  t.same(stream(a), ['ack:0', 1, 2, 3, 4, 5, 6])
})

t.test('a gap in what arrives is filled from the store, in order, once', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  broadcast()
  store.arrive()
  broadcast()
  broadcast()
  store.lose(2) // 2 and 3 never arrive
  broadcast()
  store.arrive() // 4 arrives: the feed reads 2..4
  t.same(stream(a), ['ack:0', 1], '4 waits for the read')
  broadcast()
  store.arrive() // 5 arrives while the read is pending
  await store.answer()
  t.same(stream(a), ['ack:0', 1, 2, 3, 4, 5])
})

t.test('more was missed than the store keeps: resync, then live from there', async (t) => {
  const { store, broadcast, join } = setup(3)
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  broadcast()
  store.arrive()
  for (let i = 0; i < 6; i++) broadcast()
  store.lose(5)
  store.arrive() // 7 arrives; 2..6 are gone from the store (it keeps 5..7)
  await store.answer()
  broadcast()
  store.arrive()
  t.same(stream(a), ['ack:0', 1, 'resync:E1:7', 8])
})

t.test('the room\'s epoch changes under its members: resync with offset 0 before the first message of the new epoch', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  broadcast()
  broadcast()
  store.arrive()
  store.reset(E2)
  broadcast()
  broadcast()
  store.arrive()
  t.same(stream(a), ['ack:0', 1, 2, 'resync:E2:0', 1, 2])
  t.equal(a.got[3].type, 'resync')
  t.same(a.got[3], { type: 'resync', room: 'r', data: { epoch: E2, offset: 0 } })
})

t.test('a new epoch whose first messages did not arrive: resync 0, then the missing ones from the store', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  broadcast()
  store.arrive()
  store.reset(E2)
  broadcast()
  broadcast()
  store.lose(1)
  store.arrive() // E2:2 arrives first
  await store.answer()
  t.same(stream(a), ['ack:0', 1, 'resync:E2:0', 1, 2])
})

t.test('a join that races an epoch change: its stream never goes back', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  broadcast()
  broadcast()
  store.arrive()
  store.reset(E2)
  broadcast() // E2:1, on its way
  const b = member('b')
  const joining = join(b, { since: { offset: 2, epoch: E1 } }) // reads E2 at 1
  await store.answer()
  t.same((await joining).ack, { offset: 1, epoch: E2, recovered: false }, 'another epoch: recovered false, nothing replayed')
  store.arrive() // the feed meets E2:1 now: resync to a; b is already past it
  broadcast()
  store.arrive()
  t.same(stream(b), ['ack:1', 2])
  t.same(stream(a), ['ack:0', 1, 2, 'resync:E2:0', 1, 2])
})

t.test('recovered false: since beyond the latest, another epoch, or messages gone; nothing is sent then', async (t) => {
  const { store, broadcast, join } = setup(3)
  store.immediate = true
  const a = member('a')
  await join(a)
  for (let i = 0; i < 6; i++) broadcast()
  store.arrive()
  for (const [since, recovered, replayed] of [
    [{ offset: 3, epoch: E1 }, true, [4, 5, 6]],
    [{ offset: 6, epoch: E1 }, true, []],
    [{ offset: 2, epoch: E1 }, false, []], // 3 is gone (size 3)
    [{ offset: 7, epoch: E1 }, false, []], // beyond the latest
    [{ offset: 3, epoch: E2 }, false, []] // another epoch
  ] as const) {
    const b = member('b')
    const handle = await join(b, { since })
    t.equal(handle.ack.recovered, recovered, `since ${JSON.stringify(since)}: recovered ${recovered}`)
    t.same(stream(b), [...replayed, 'ack:6'])
  }
})

t.test('history: n replays the last n kept (at most size); a join without data replays nothing', async (t) => {
  const { store, broadcast, join } = setup(4)
  store.immediate = true
  for (let i = 0; i < 6; i++) broadcast()
  store.arrive()
  const a = member('a')
  t.same((await join(a, { history: 2 })).ack, { offset: 6, epoch: E1 }, 'no recovered without since')
  const b = member('b')
  await join(b, { history: 50 })
  const c = member('c')
  await join(c)
  t.same(stream(a), [5, 6, 'ack:6'])
  t.same(stream(b), [3, 4, 5, 6, 'ack:6'])
  t.same(stream(c), ['ack:6'])
})

t.test('re-joining while in the room: replayed again, acked again, live goes on without a duplicate', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  for (let i = 0; i < 3; i++) broadcast()
  store.arrive()
  const again = join(a, { since: { offset: 1, epoch: E1 } })
  broadcast()
  store.arrive() // 4 comes while the re-join reads (read at 3)
  await store.answer()
  await again
  broadcast()
  store.arrive()
  t.same(stream(a), ['ack:0', 1, 2, 3, 2, 3, 'ack:3', 4, 5])
})

t.test('except holds for live and for catch-up delivery', async (t) => {
  const { store, broadcast, join } = setup()
  const a = member('a')
  const b = member('b')
  const ja = join(a)
  await store.answer()
  await ja
  const jb = join(b)
  await store.answer()
  await jb
  broadcast(['a'])
  store.arrive()
  broadcast(['b'])
  store.lose()
  broadcast()
  store.arrive()
  await store.answer()
  t.same(stream(a), ['ack:0', 2, 3])
  t.same(stream(b), ['ack:0', 1, 3])
})

t.test('a store that cannot be read: the join is acked with what this instance knows; a resync follows once it can', async (t) => {
  const { store, feeds, broadcast, join } = setup()
  const a = member('a')
  const first = join(a)
  await store.answer()
  await first
  broadcast()
  broadcast()
  store.arrive()
  store.available = false
  const b = member('b')
  t.same((await join(b, { since: { offset: 2, epoch: E1 } })).ack, { offset: 2, epoch: E1, recovered: true }, 'nothing was missed: recovered')
  const c = member('c')
  t.same((await join(c, { since: { offset: 1, epoch: E1 } })).ack, { offset: 2, epoch: E1, recovered: false }, 'cannot replay: recovered false')
  store.available = true
  store.epoch = E1
  broadcast()
  store.lose()
  store.available = false
  feeds.reconnected() // still unreachable: nothing to do yet
  store.available = true
  feeds.reconnected()
  await store.answer()
  t.same(stream(b), ['ack:2', 3], 'what b missed meanwhile is delivered once the store is back')
  t.same(stream(c), ['ack:2', 3])
})

t.test('a room this instance never read, joined while the store is unreachable: epoch "unavailable", then resync', async (t) => {
  const { store, feeds, broadcast, join } = setup()
  store.available = false
  const a = member('a')
  t.same((await join(a, { since: { offset: 5, epoch: E1 } })).ack, { offset: 0, epoch: UNKNOWN_EPOCH, recovered: false })
  store.available = true
  broadcast()
  broadcast()
  store.lose()
  feeds.reconnected()
  await store.answer()
  broadcast()
  store.arrive()
  t.same(stream(a), ['ack:0', 'resync:E1:2', 3])
})

t.test('a member that leaves while its join reads gets nothing; the last one to leave drops the feed', async (t) => {
  const { store, feeds, broadcast, join, leave } = setup()
  const a = member('a')
  const joining = join(a, { since: { offset: 0, epoch: E1 } })
  broadcast()
  leave(a)
  t.equal(feeds.watching('r'), false, 'the feed went with its last member')
  await store.answer()
  await joining
  store.arrive()
  t.same(stream(a), ['ack:0'], 'only the ack dispatch would send; no replay, no live message')
})

t.test('a failed catch-up read is retried; a store that fails an append delivers locally without offset', async (t) => {
  const { store, feeds, unkept } = setup()
  feeds.unsequenced('r', '{"type":"m","room":"r"}')
  t.same(unkept, ['{"type":"m","room":"r"}'])
  t.same(store.reads, [])
})

t.test('any interleaving of broadcasts, arrivals, lost copies and joins: each member gets every offset after its ack once, in order', async (t) => {
  type Step = { kind: 'broadcast' } | { kind: 'arrive', n: number } | { kind: 'lose' } | { kind: 'join', who: number, since: number } |
    { kind: 'answer' } | { kind: 'leave', who: number } | { kind: 'reset' } | { kind: 'outage' } | { kind: 'back' }
  const step = fc.oneof(
    { weight: 5, arbitrary: fc.constant<Step>({ kind: 'broadcast' }) },
    { weight: 4, arbitrary: fc.integer({ min: 1, max: 4 }).map<Step>((n) => ({ kind: 'arrive', n })) },
    { weight: 1, arbitrary: fc.constant<Step>({ kind: 'lose' }) },
    { weight: 2, arbitrary: fc.record({ who: fc.integer({ min: 0, max: 3 }), since: fc.integer({ min: 0, max: 40 }) }).map<Step>((j) => ({ kind: 'join', ...j })) },
    { weight: 3, arbitrary: fc.constant<Step>({ kind: 'answer' }) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max: 3 }).map<Step>((who) => ({ kind: 'leave', who })) },
    { weight: 1, arbitrary: fc.constant<Step>({ kind: 'reset' }) },
    { weight: 1, arbitrary: fc.constant<Step>({ kind: 'outage' }) },
    { weight: 2, arbitrary: fc.constant<Step>({ kind: 'back' }) }
  )
  await fc.assert(fc.asyncProperty(fc.array(step, { minLength: 5, maxLength: 60 }), async (steps) => {
    const { store, broadcast, members, feeds } = setup(20)
    const people = [0, 1, 2, 3].map((i) => member(`m${i}`))
    const pending: Array<Promise<void>> = []
    let epochs = 1
    for (const s of steps) {
      if (s.kind === 'broadcast') broadcast()
      else if (s.kind === 'reset') store.reset(String(++epochs).padStart(13, '0') + '-xxxxxxxx')
      else if (s.kind === 'outage' && store.available) {
        // the adapter is cut off: what was in flight is lost, reads fail, nothing is appended
        store.available = false
        store.lose()
        while (store.reads.length > 0) await store.fail()
      } else if (s.kind === 'back' && !store.available) {
        store.available = true
        feeds.reconnected()
      } else if (s.kind === 'arrive') store.arrive(s.n)
      else if (s.kind === 'lose' && store.inFlight.length > 0) {
        // a subscriber cut off loses what was in flight; the adapter reports its reconnection
        store.lose(1)
        feeds.reconnected()
      } else if (s.kind === 'answer' && store.reads.length > 0) await store.answer()
      else if (s.kind === 'leave' && members.has(people[s.who])) {
        members.delete(people[s.who])
        feeds.left(people[s.who], 'r', members.size === 0)
        people[s.who].got.push({ type: 'left' })
      } else if (s.kind === 'join') {
        const who = people[s.who]
        members.add(who)
        const since = Math.min(s.since, store.offset)
        const result = feeds.join(who, 'r', { since: { offset: since, epoch: store.epoch } })
        pending.push(Promise.resolve(result).then((handle) => {
          if (!members.has(who)) return
          who.got.push({ type: 'ack', data: handle.ack, since })
          handle.release()
        }))
      }
      await settle()
    }
    // let everything finish: the store is back, one more broadcast (so every member learns the last epoch), every copy arrives, every read is answered
    if (!store.available) {
      store.available = true
      feeds.reconnected()
    }
    broadcast()
    for (let i = 0; i < 200 && (store.reads.length > 0 || store.inFlight.length > 0); i++) {
      store.arrive()
      if (store.reads.length > 0) await store.answer()
      await settle()
    }
    await Promise.all(pending)
    for (const who of people) {
      // from the last ack on (the last join's stream), while still a member
      const lastAck = who.got.map((x) => x.type).lastIndexOf('ack')
      if (lastAck < 0 || !members.has(who)) continue
      const ack = who.got[lastAck]
      const after = who.got.slice(lastAck + 1)
      let expected = ack.data.offset
      let epoch = ack.data.epoch
      for (const x of after) {
        if (x.type === 'resync') {
          if ((epoch !== UNKNOWN_EPOCH && x.data.epoch < epoch) || (x.data.epoch === epoch && x.data.offset <= expected)) throw new Error(`${who.id}: a resync that goes back: ${JSON.stringify(stream(who))}`)
          expected = x.data.offset
          epoch = x.data.epoch
          continue
        }
        if (x.offset !== expected + 1) throw new Error(`${who.id}: got ${x.offset} after ${expected}: ${JSON.stringify(stream(who))}`)
        expected = x.offset
      }
      if (epoch !== store.epoch) throw new Error(`${who.id}: ended in epoch ${epoch}, the room is in ${store.epoch}: ${JSON.stringify(stream(who))}`)
      if (expected !== store.offset) throw new Error(`${who.id}: ended at ${expected}, the room is at ${store.offset}: ${JSON.stringify(stream(who))}`)
      // the replay before that ack: exactly since+1 .. ack.offset when recovered
      if (ack.data.recovered === true) {
        const before = who.got.slice(0, lastAck)
        const replay = before.slice(before.length - (ack.data.offset - ack.since))
        const offsets = replay.map((x) => x.offset)
        const want = Array.from({ length: ack.data.offset - ack.since }, (_, i) => ack.since + 1 + i)
        if (JSON.stringify(offsets) !== JSON.stringify(want)) throw new Error(`${who.id}: replay ${JSON.stringify(offsets)}, want ${JSON.stringify(want)}`)
      }
    }
    feeds.close()
  }), { numRuns: Number(process.env.FEED_RUNS ?? 400) })
  t.pass('random interleavings held')
})
