// Slow consumers: a member that stops reading while its room gets a sustained
// broadcast is closed with 1013 once its backlog passes maxBufferedBytes; what
// the server holds for it stays bounded, and the other members receive every
// message, in order, without being slowed or closed.
import { setImmediate as nextTurn } from 'node:timers/promises'
import t from 'tap'
import WebSocket from 'ws'
import { build, listen, sign, sleep, hub } from '../helpers.js'
import { heapAfterGc } from './memory.js'

const MAX_BUFFERED = 128 * 1024
const PER_TURN = 8
const PAD = 'x'.repeat(1000)

interface Reader {
  ws: WebSocket
  seqs: number[]
  others: string[]
  close: Promise<number>
}

async function reader (url: string, token: string): Promise<Reader> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` } })
  const r: Reader = { ws, seqs: [], others: [], close: new Promise((resolve) => ws.once('close', (code) => resolve(code))) }
  ws.on('message', (raw) => {
    const s = raw.toString()
    if (s.startsWith('{"type":"tick"')) r.seqs.push(JSON.parse(s).data.seq)
    else r.others.push(s)
  })
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send('{"type":"join","room":"feed","id":"join"}')
  const deadline = Date.now() + 3000
  while (!r.others.includes('{"type":"ack","id":"join","data":{"room":"feed"}}') && Date.now() < deadline) await sleep(5)
  r.others.length = 0
  return r
}

const inOrder = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

async function feedApp (t: { after: (fn: () => unknown) => void }, closeGracePeriod: number): Promise<{ app: Awaited<ReturnType<typeof build>>, url: string }> {
  const app = await build(t, { maxBufferedBytes: MAX_BUFFERED, closeGracePeriod, heartbeat: false, routes: [{ path: '/feed', messages: {} }] })
  return { app, url: (await listen(app)) + '/feed' }
}

t.test('a member that stops reading is closed with 1013; the others get everything, in order', async (t) => {
  const { app, url } = await feedApp(t, 3000)
  const fast = await Promise.all(['a', 'b', 'c'].map(async (sub) => await reader(url, sign(app, sub))))
  const slow = await reader(url, sign(app, 'slow'))
  const slowConn = hub(app).connections().find((c) => c.sub === 'slow')
  t.ok(slowConn, 'the slow member is connected')
  ;(slow.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  const heapBefore = heapAfterGc()

  // sustained broadcast, a few frames per event-loop turn, until the slow member is dropped, then more
  let seq = 0
  let maxHeld = 0
  let closedAt: number | undefined
  const memberSubs = async (): Promise<string[]> => (await app.realtime.members('feed')).map((m) => m.sub as string).sort()
  while (seq < 40_000) {
    for (let i = 0; i < PER_TURN; i++) app.realtime.broadcast('feed', 'tick', { seq: seq++, pad: PAD })
    maxHeld = Math.max(maxHeld, slowConn?.ws.bufferedAmount ?? 0)
    await nextTurn()
    if (closedAt === undefined && !(await memberSubs()).includes('slow')) closedAt = seq
    if (closedAt !== undefined && seq >= closedAt + 2000) break
  }
  t.ok(closedAt !== undefined, `the slow member was dropped from the room after ${closedAt} broadcasts (about ${((closedAt ?? 0) * 1030 / 1048576).toFixed(1)} MiB sat in kernel buffers before the backlog grew)`)
  t.same(await memberSubs(), ['a', 'b', 'c'], 'the fast members are still in the room')
  t.ok(maxHeld <= MAX_BUFFERED + 4 * PER_TURN * 1100, `the server held at most ${(maxHeld / 1024).toFixed(0)} KiB for it (maxBufferedBytes ${MAX_BUFFERED / 1024} KiB)`)

  // the slow member reads again: what it got is an in-order prefix, then 1013
  ;(slow.ws as unknown as { _socket: { resume: () => void } })._socket.resume()
  t.equal(await slow.close, 1013, 'the slow member is closed with 1013')
  t.same(slow.seqs, inOrder(slow.seqs.length), `it got an unbroken, in-order prefix (${slow.seqs.length} messages)`)
  t.ok(slow.seqs.length < seq, 'and not the messages sent after it was dropped')

  // the others: every message, in order, still connected
  const deadline = Date.now() + 10_000
  while (fast.some((r) => r.seqs.length < seq) && Date.now() < deadline) await sleep(10)
  for (const [i, r] of fast.entries()) {
    t.equal(r.seqs.length, seq, `fast member ${i} received all ${seq} messages`)
    t.ok(r.seqs.every((s, k) => s === k), `fast member ${i} received them in order`)
    t.same(r.others, [], `fast member ${i} got nothing else`)
    t.equal(r.ws.readyState, WebSocket.OPEN, `fast member ${i} is still connected`)
  }
  const grown = heapAfterGc() - heapBefore
  t.ok(grown < 64 * 1024 * 1024, `heap grew ${(grown / 1048576).toFixed(1)} MiB over ${seq} broadcasts`)
  t.comment(`stats: ${JSON.stringify(app.realtime.stats())}`)
  for (const r of fast) r.ws.close()
})

t.test('a slow member that never reads again is released, not held forever', async (t) => {
  const GRACE = 500
  const { app, url } = await feedApp(t, GRACE)
  const slow = await reader(url, sign(app, 'slow'))
  ;(slow.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  let seq = 0
  while ((await app.realtime.members('feed')).length > 0 && seq < 40_000) {
    for (let i = 0; i < PER_TURN; i++) app.realtime.broadcast('feed', 'tick', { seq: seq++, pad: PAD })
    await nextTurn()
  }
  const droppedAt = Date.now()
  t.equal((await app.realtime.members('feed')).length, 0, `dropped from the room after ${seq} broadcasts`)
  // it never reads the 1013 behind its backlog: the server must let go of the socket on its own
  const deadline = droppedAt + GRACE + 2000
  while (app.realtime.stats().connections > 0 && Date.now() < deadline) await sleep(10)
  t.equal(app.realtime.stats().connections, 0, `the socket was released ${Date.now() - droppedAt} ms after the 1013 (closeGracePeriod ${GRACE} ms)`)
  slow.ws.terminate()
})

t.test('a burst larger than maxBufferedBytes in one turn does not close members that read', async (t) => {
  const { app, url } = await feedApp(t, 3000)
  const members = await Promise.all(['a', 'b'].map(async (sub) => await reader(url, sign(app, sub))))
  // 400 KiB in one synchronous loop: corked until the end of the turn, but nobody is slow
  const BURST = 400
  for (let seq = 0; seq < BURST; seq++) app.realtime.broadcast('feed', 'tick', { seq, pad: PAD })
  const deadline = Date.now() + 5000
  while (members.some((r) => r.seqs.length < BURST && r.ws.readyState === WebSocket.OPEN) && Date.now() < deadline) await sleep(10)
  for (const [i, r] of members.entries()) {
    t.equal(r.ws.readyState, WebSocket.OPEN, `member ${i} is still connected`)
    t.same(r.seqs, inOrder(BURST), `member ${i} got the whole burst, in order`)
  }
  for (const r of members) r.ws.close()
})
