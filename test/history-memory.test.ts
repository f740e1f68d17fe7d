import t from 'tap'
import { MemoryHistoryStore } from '../lib/history/memory.js'
import { isNewerEpoch, newEpoch, type HistorySink } from '../lib/history/store.js'

const everyRoom = (): boolean => true

/** A store with a clock the test moves, and a sink that records what it was told. */
function setup (size: number, ttl = 10_000, watching: (room: string) => boolean = () => false) {
  let now = 1_000_000
  const store = new MemoryHistoryStore({ size, ttl, rooms: everyRoom }, () => now)
  const sequenced: Array<{ room: string, epoch: string, offset: number, payload: string, except?: readonly string[] }> = []
  const sink: HistorySink = {
    sequenced: (room, epoch, offset, payload, except) => { sequenced.push({ room, epoch, offset, payload, except }) },
    unsequenced: () => { throw new Error('the memory store never fails an append') },
    reconnected: () => {},
    watching
  }
  store.attach(sink)
  t.teardown(() => store.close())
  return { store, sequenced, tick: (ms: number) => { now += ms }, now: () => now }
}

const body = (n: number): string => `{"type":"m","room":"r","data":${n}`

t.test('offsets start at 1 and grow by 1 per message of a room; each room has its own', async (t) => {
  const { store, sequenced } = setup(10)
  for (let i = 1; i <= 3; i++) t.equal(store.append('r', body(i)), true)
  store.append('other', body(9))
  t.same(sequenced.map((s) => [s.room, s.offset]), [['r', 1], ['r', 2], ['r', 3], ['other', 1]])
  t.equal(sequenced[0].payload, '{"type":"m","room":"r","data":1,"offset":1}', 'the envelope carries its offset, last')
  t.equal(new Set(sequenced.filter((s) => s.room === 'r').map((s) => s.epoch)).size, 1, 'one epoch per room')
  t.not(sequenced[0].epoch, sequenced[3].epoch, 'rooms have epochs of their own')
  const read = store.read('r', { after: 0, limit: 10 })
  t.same(read.entries.map((e) => e.offset), [1, 2, 3])
  t.equal(read.offset, 3)
  t.equal(read.epoch, sequenced[0].epoch)
})

t.test('exactly the last `size` messages are kept; offsets keep growing', async (t) => {
  const { store } = setup(3)
  for (let i = 1; i <= 7; i++) store.append('r', body(i))
  t.same(store.read('r', { after: 0, limit: 100 }).entries.map((e) => e.offset), [5, 6, 7])
  t.same(store.read('r', { last: 2 }).entries.map((e) => e.offset), [6, 7])
  t.same(store.read('r', { last: 50 }).entries.map((e) => e.offset), [5, 6, 7], 'never more than size')
  t.same(store.read('r', { after: 5, limit: 1 }).entries.map((e) => e.offset), [6], 'limit: the first after `after`')
  t.same(store.read('r', { after: 7, limit: 10 }).entries, [], 'nothing after the latest')
  t.same(store.read('r', { after: 99, limit: 10 }).entries, [], 'an offset beyond the latest reads nothing')
  t.same(store.read('r', { last: 0 }).entries, [])
  t.equal(store.read('r', { last: 0 }).offset, 7)
})

t.test('the ring keeps its order through wrap-around, expiry and refills', async (t) => {
  const { store, tick } = setup(4, 1000)
  for (let i = 1; i <= 6; i++) store.append('r', body(i)) // 3..6 kept
  tick(600)
  store.append('r', body(7)) // 4..7
  tick(500) // 4, 5, 6 are 1100 ms old, 7 is 500 ms old
  t.same(store.read('r', { after: 0, limit: 10 }).entries.map((e) => e.offset), [7], 'expired messages are not read, even before the sweep')
  store.sweep(1_000_000 + 1100)
  store.append('r', body(8))
  store.append('r', body(9))
  store.append('r', body(10))
  t.same(store.read('r', { after: 0, limit: 10 }).entries.map((e) => e.offset), [7, 8, 9, 10])
  t.same(store.read('r', { after: 0, limit: 10 }).entries.map((e) => JSON.parse(e.payload).data), [7, 8, 9, 10], 'each offset with its own envelope')
  store.append('r', body(11))
  t.same(store.read('r', { last: 10 }).entries.map((e) => e.offset), [8, 9, 10, 11])
})

t.test('except lists are kept with their message', async (t) => {
  const { store, sequenced } = setup(5)
  store.append('r', body(1), ['c1'])
  store.append('r', body(2))
  t.same(sequenced.map((s) => s.except), [['c1'], undefined])
  t.same(store.read('r', { after: 0, limit: 5 }).entries, [
    { offset: 1, payload: '{"type":"m","room":"r","data":1,"offset":1}', except: ['c1'] },
    { offset: 2, payload: '{"type":"m","room":"r","data":2,"offset":2}' }
  ])
})

t.test('expiry removes messages, not the counter; an idle room nobody is in is freed and starts a new epoch', async (t) => {
  const watched = new Set<string>()
  const { store, tick, now } = setup(10, 2000, (room) => watched.has(room))
  store.append('idle', body(1))
  store.append('idle', body(2))
  store.append('watched', body(1))
  watched.add('watched')
  const epochIdle = store.read('idle', { last: 0 }).epoch
  const epochWatched = store.read('watched', { last: 0 }).epoch
  tick(1500)
  store.sweep(now())
  t.equal(store.read('idle', { after: 0, limit: 10 }).entries.length, 2, 'not expired yet')
  tick(600)
  store.sweep(now())
  t.equal(store.rooms, 1, 'the idle room is freed, the watched one stays')
  const watchedRead = store.read('watched', { after: 0, limit: 10 })
  t.same([watchedRead.epoch, watchedRead.offset, watchedRead.entries], [epochWatched, 1, []], 'messages expired, counter and epoch kept')
  store.append('watched', body(2))
  t.equal(store.read('watched', { last: 1 }).entries[0].offset, 2, 'offsets keep growing within the epoch')
  const fresh = store.read('idle', { last: 0 })
  t.not(fresh.epoch, epochIdle, 'a freed room starts a new epoch')
  t.equal(fresh.offset, 0)
  t.ok(isNewerEpoch(fresh.epoch, epochIdle), 'later epochs sort after earlier ones')
})

t.test('the sweep timer is unref\'d, stops when no room is left, and close() clears it', async (t) => {
  const { store, tick, now } = setup(10, 1000)
  t.equal(store.sweeping, false, 'no timer before a room exists')
  // getActiveResourcesInfo lists ref'd timers only
  const refTimers = (): number => process.getActiveResourcesInfo().filter((kind) => kind === 'Timeout').length
  const before = refTimers()
  store.append('r', body(1))
  t.equal(store.sweeping, true)
  t.equal(refTimers(), before, 'the sweep timer does not keep the process alive')
  tick(2000)
  store.sweep(now())
  t.equal(store.rooms, 0)
  t.equal(store.sweeping, false, 'the timer stopped with the last room')
  store.append('r', body(2))
  t.equal(store.sweeping, true)
  store.close()
  t.equal(store.sweeping, false, 'close() clears it')
  t.equal(store.rooms, 0, 'and frees every room')
})

t.test('epochs: 13 digits of time, then random characters; at most 64 characters', async (t) => {
  const a = newEpoch(1000)
  const b = newEpoch(2000)
  t.match(a, /^0000000001000-[\w-]{8}$/)
  t.ok(isNewerEpoch(b, a))
  t.notOk(isNewerEpoch(a, b))
  t.ok(a.length <= 64)
})
