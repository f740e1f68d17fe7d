// Message floods: a client far past rateLimit gets RATE_LIMITED, then close
// 4429, while the other members of its room keep chatting with bounded latency.
import t from 'tap'
import { chatSend } from './chat-message.js'
import WebSocket from 'ws'
import { build, closed, connect, listen, sign, sleep, type Inbox } from '../helpers.js'
import { OP_TEXT, type RawSocket, frame, rawConnect } from './wire.js'

const MAX = 300

async function chatApp (t: { after: (fn: () => unknown) => void }, rateLimit: { max: number, windowMs: number }): Promise<{ app: Awaited<ReturnType<typeof build>>, url: string }> {
  const app = await build(t, {
    rateLimit,
    heartbeat: false,
    routes: [{
      path: '/chat',
      messages: {
        'chat.send': chatSend((seq) => ({ seq }))
      }
    }]
  })
  return { app, url: (await listen(app)) + '/chat' }
}

async function member (app: Awaited<ReturnType<typeof build>>, url: string, sub: string): Promise<Inbox> {
  const inbox = await connect(url, { headers: { authorization: `Bearer ${sign(app, sub)}` } })
  await inbox.request({ type: 'join', room: 'lobby', id: 'join' })
  return inbox
}

function percentile (values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

t.test('flooders get RATE_LIMITED, then 4429; the others keep chatting', async (t) => {
  // a long window, so the verdict for each message is exact
  const { app, url } = await chatApp(t, { max: MAX, windowMs: 60_000 })
  const names = ['ann', 'ben', 'cat', 'dan']
  const chatters = await Promise.all(names.map(async (sub) => await member(app, url, sub)))

  // the chatters: request/ack round trips, measured, before, during and after the flood
  const latencies: number[] = []
  const chatting = { on: true }
  const chat = chatters.map(async (inbox, c) => {
    let seq = 0
    // the join took one message of the window: stay under the limit
    while (chatting.on && seq < MAX - 2) {
      const started = performance.now()
      const ack = await inbox.request({ type: 'chat.send', room: 'lobby', id: `c${seq}`, data: { seq } })
      latencies.push(performance.now() - started)
      if (ack.type !== 'ack') throw new Error(`chatter ${c} got ${JSON.stringify(ack)}`)
      seq++
      await sleep(2)
    }
    return seq
  })

  // flooders, one after another, each sending 50 times its limit at once
  await sleep(20)
  const FLOOD = 50 * MAX
  const flooderNames = ['f1', 'f2', 'f3', 'f4', 'f5', 'f6']
  // built once and written in one go from a raw socket, so the test process spends no time sending
  const flood = Buffer.concat(Array.from({ length: FLOOD }, (_, i) => frame({ opcode: OP_TEXT, payload: `{"type":"chat.send","room":"lobby","id":${i},"data":{"seq":${i}}}` })))
  const port = Number(new URL(url).port)
  const flooders: RawSocket[] = []
  const codes: Array<number | undefined> = []
  const floodStarted = performance.now()
  for (const sub of flooderNames) {
    const raw = await rawConnect(port, '/chat', { headers: { authorization: `Bearer ${sign(app, sub)}` } })
    raw.sendText('{"type":"join","room":"lobby","id":"join"}')
    await raw.until(() => raw.texts.length > 0)
    flooders.push(raw)
    raw.write(flood)
    codes.push(await raw.closed(5000))
    raw.destroy()
  }
  const floodMs = performance.now() - floodStarted
  t.same(codes, flooderNames.map(() => 4429), 'every flooder is closed with 4429')
  await sleep(20)
  chatting.on = false
  const sent = await Promise.all(chat)

  for (const [i, raw] of flooders.entries()) {
    const answers = raw.texts.map((s) => JSON.parse(s)).filter((m) => m.type === 'ack' || m.type === 'error').filter((m) => m.id !== 'join')
    const acks = answers.filter((m) => m.type === 'ack').map((m) => m.id)
    const limited = answers.filter((m) => m.type === 'error')
    // the join was the window's first message: MAX - 1 flood messages fit, the next MAX are refused, then 4429
    t.same(acks, Array.from({ length: MAX - 1 }, (_, k) => k), `flooder ${i}: the first ${MAX - 1} flood messages are served, in order`)
    t.equal(limited.length, MAX, `flooder ${i}: the next ${MAX} get an error`)
    t.ok(limited.every((m) => m.code === 'RATE_LIMITED' && (m.id === undefined || (m.id >= MAX - 1 && m.id < 2 * MAX - 1))), 'each one RATE_LIMITED')
    t.same(answers.map((m) => m.type), [...Array(MAX - 1).fill('ack'), ...Array(MAX).fill('error')], 'the errors come after the served messages, then nothing')
  }

  // every chatter got every chatter's message and the flooders' served ones, and no error
  for (const [c, inbox] of chatters.entries()) {
    t.same(inbox.messages.filter((m) => m.type === 'error'), [], `chatter ${c} never got an error`)
    for (const [o, other] of names.entries()) {
      const seqs = inbox.messages.filter((m) => m.type === 'chat.message' && m.data.from === other).map((m) => m.data.seq)
      t.same(seqs, Array.from({ length: sent[o] }, (_, k) => k), `chatter ${c} got all ${sent[o]} messages of ${other}, in order`)
    }
    for (const f of flooderNames) {
      const seqs = inbox.messages.filter((m) => m.type === 'chat.message' && m.data.from === f).map((m) => m.data.seq)
      t.same(seqs, Array.from({ length: MAX - 1 }, (_, k) => k), `chatter ${c} got the ${MAX - 1} served messages of ${f}`)
    }
  }
  const p50 = percentile(latencies, 0.5)
  const p99 = percentile(latencies, 0.99)
  const max = Math.max(...latencies)
  t.comment(`${flooderNames.length} flooders x ${FLOOD} messages in ${floodMs.toFixed(0)} ms; chatter round trips: ${latencies.length}, p50 ${p50.toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${max.toFixed(1)} ms`)
  t.ok(latencies.length >= 40, 'the chatters kept chatting through the flood')
  // generous: the machine running the suite may be busy; an unfair server would stall chatters for seconds
  t.ok(max < 1500, `the others' latency stays bounded (max ${max.toFixed(1)} ms)`)
  for (let waited = 0; app.realtime.stats().connections > names.length && waited < 3000; waited += 10) await sleep(10)
  const stats = app.realtime.stats()
  t.ok(stats.drops >= flooderNames.length * MAX, `drops counted (${stats.drops})`)
  t.equal(stats.connections, names.length, 'only the chatters remain')
  t.same((await app.realtime.members('lobby')).map((m) => m.sub).sort(), names, 'the flooders left the room')
  for (const inbox of chatters) inbox.ws.close()
})

t.test('a flood of junk counts against the limit too', async (t) => {
  const { app, url } = await chatApp(t, { max: MAX, windowMs: 60_000 })
  const inbox = await connect(url, { headers: { authorization: `Bearer ${sign(app, 'junk')}` } })
  const done = closed(inbox.ws)
  for (let i = 0; i < 5000; i++) inbox.ws.send(i % 2 === 0 ? 'not json at all' : '{"type":"nope"}')
  t.equal((await done).code, 4429, 'closed with 4429')
  const codes = inbox.messages.map((m) => m.code)
  t.equal(codes.length, 2 * MAX, `${2 * MAX} answers before the close`)
  t.same(codes.slice(0, MAX).filter((c) => c === 'RATE_LIMITED'), [], 'the first ones are judged on their content')
  t.ok(codes.slice(MAX).every((c) => c === 'RATE_LIMITED'), 'the rest are RATE_LIMITED, unparsed')
})

t.test('a client just over the limit is throttled, not closed', async (t) => {
  const WINDOW = 300
  const { app, url } = await chatApp(t, { max: 10, windowMs: WINDOW })
  const inbox = await member(app, url, 'eager')
  await sleep(WINDOW)
  const answersPerBurst: Array<{ acks: number, limited: number }> = []
  for (let burst = 0; burst < 3; burst++) {
    const before = inbox.messages.length
    // 15 in a burst: 10 served, 5 refused; under twice the limit, so never closed
    for (let i = 0; i < 15; i++) inbox.send({ type: 'chat.send', room: 'lobby', id: burst * 100 + i, data: { seq: i } })
    const answered = (): any[] => inbox.messages.slice(before).filter((m) => m.type === 'ack' || m.type === 'error')
    for (let waited = 0; answered().length < 15 && waited < 2000; waited += 5) await sleep(5)
    const answers = answered()
    answersPerBurst.push({ acks: answers.filter((m) => m.type === 'ack').length, limited: answers.filter((m) => m.code === 'RATE_LIMITED').length })
    await sleep(WINDOW + 20)
  }
  t.same(answersPerBurst, [{ acks: 10, limited: 5 }, { acks: 10, limited: 5 }, { acks: 10, limited: 5 }], 'each window serves 10 and refuses 5')
  t.equal(inbox.ws.readyState, WebSocket.OPEN, 'still connected')
  inbox.ws.close()
})
