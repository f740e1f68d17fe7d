// Memory does not grow with connections that came and went: connections
// opened, joined in rooms of two, chatted and closed, three times; the heap
// after the third cycle is within 5% of the heap after the first (the first
// pays for the JIT and the tables a first connection fills), and nothing of
// them is left in the plugin's own structures. `npm run bench` runs the same
// check with 10,000 connections over real sockets, with RSS.
import t from 'tap'
import type WebSocket from 'ws'
import { build, sign, sleep, hub } from '../helpers.js'
import { chatSend } from './chat-message.js'
import { heapAfterGc } from './memory.js'

const CONNECTIONS = 1000
const CYCLES = 3
const MESSAGES = 2
const AGENTS = ['agent/1', 'agent/2', 'agent/3']

async function until (check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 20_000
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`)
    await sleep(5)
  }
}

t.test(`${CONNECTIONS} connections opened, joined in pairs, chatting and closed, ${CYCLES} times: no growth`, async (t) => {
  const app = await build(t, {
    heartbeat: false,
    rateLimit: { max: 1000, windowMs: 1000 },
    routes: [{ path: '/chat', messages: { 'chat.send': chatSend() } }]
  })
  await app.ready()
  const heaps: number[] = []
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const sockets: WebSocket[] = []
    let delivered = 0
    let acked = 0
    for (let i = 0; i < CONNECTIONS; i++) {
      const ws = await app.injectWS('/chat', {
        headers: { authorization: `Bearer ${sign(app, `user-${cycle}-${i}`)}`, 'user-agent': AGENTS[i % AGENTS.length] }
      })
      ws.on('message', (raw: Buffer) => {
        const text = raw.toString()
        if (text.startsWith('{"type":"chat.message"')) delivered++
        else if (text.startsWith('{"type":"ack"')) acked++
      })
      sockets.push(ws)
    }
    t.equal(app.realtime.stats().connections, CONNECTIONS, `cycle ${cycle + 1}: all open`)
    for (let i = 0; i < CONNECTIONS; i++) sockets[i].send(JSON.stringify({ type: 'join', room: `pair-${i >> 1}`, id: 'j' }))
    await until(() => acked >= CONNECTIONS, 'joins acked')
    for (let m = 0; m < MESSAGES; m++) {
      for (let i = 0; i < CONNECTIONS; i++) sockets[i].send(JSON.stringify({ type: 'chat.send', room: `pair-${i >> 1}`, data: { seq: m } }))
    }
    // each message reaches both members of its pair (the sender too: broadcast has no except here)
    await until(() => delivered >= CONNECTIONS * MESSAGES * 2, 'chat delivered')
    t.equal(delivered, CONNECTIONS * MESSAGES * 2, `cycle ${cycle + 1}: every chat message delivered`)
    for (const ws of sockets) ws.close(1000)
    await until(() => app.realtime.stats().connections === 0, 'every connection closed')
    sockets.length = 0
    await sleep(20)
    heaps.push(heapAfterGc())
    const h = hub(app)
    t.equal(h.registry.size, 0, `cycle ${cycle + 1}: no room left`)
    t.equal(h.limits.active, 0, `cycle ${cycle + 1}: no connection slot held`)
    t.equal(app.realtime.connections().length, 0, `cycle ${cycle + 1}: no connection tracked`)
    t.ok(h.sharedStrings.size <= AGENTS.length + 8, `cycle ${cycle + 1}: shared header values stay few (${h.sharedStrings.size})`)
  }
  const growth = heaps[CYCLES - 1] / heaps[0] - 1
  t.comment(`heap after each cycle: ${heaps.map((h) => (h / 2 ** 20).toFixed(1) + ' MiB').join(', ')}`)
  t.ok(growth <= 0.05, `heap after cycle ${CYCLES} within 5% of cycle 1 (${(growth * 100).toFixed(1)}%)`)
})
