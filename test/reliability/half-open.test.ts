// Half-open connections: a client whose TCP goes silent (it stops reading and
// answers no ping) is terminated within two heartbeat intervals and leaves its
// rooms; idle but healthy clients are left alone.
import t from 'tap'
import WebSocket from 'ws'
import { build, listen, sign, sleep } from '../helpers.js'

const INTERVAL = 200

interface Client { sub: string, ws: WebSocket, messages: any[] }

async function client (url: string, token: string, sub: string, options: WebSocket.ClientOptions = {}): Promise<Client> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}` }, ...options })
  const c: Client = { sub, ws, messages: [] }
  ws.on('message', (raw) => c.messages.push(JSON.parse(raw.toString())))
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
  ws.send('{"type":"join","room":"room","id":"join"}')
  for (let waited = 0; !c.messages.some((m) => m.id === 'join') && waited < 3000; waited += 5) await sleep(5)
  return c
}

t.test('silent clients are terminated within two heartbeat intervals and leave their rooms', async (t) => {
  const closes = new Map<string, { code: number, at: number }>()
  const app = await build(t, {
    heartbeat: { interval: INTERVAL },
    routes: [{
      path: '/live',
      presence: true,
      messages: {},
      onClose (conn, code) {
        closes.set(conn.sub as string, { code, at: Date.now() })
      }
    }]
  })
  const url = (await listen(app)) + '/live'
  const healthy = await Promise.all(['h1', 'h2', 'h3'].map(async (sub) => await client(url, sign(app, sub), sub)))
  // half-open: answers no ping and reads nothing
  const dead = await Promise.all(['d1', 'd2', 'd3'].map(async (sub) => await client(url, sign(app, sub), sub, { autoPong: false })))
  // reads, but answers no ping
  const mute = await Promise.all(['m1', 'm2'].map(async (sub) => await client(url, sign(app, sub), sub, { autoPong: false })))
  // the worst phase: it answers a ping, then goes silent at once, so a whole sweep passes before it is suspected
  const phase = await client(url, sign(app, 'p1'), 'p1', { autoPong: false })
  let answered = 0
  let phaseSilentAt = 0
  phase.ws.on('ping', (data) => {
    if (answered >= 2) return
    phase.ws.pong(data)
    if (++answered === 2) phaseSilentAt = Date.now()
  })
  t.equal((await app.realtime.members('room')).length, 9, 'everyone joined')

  const silentSince = Date.now()
  for (const c of dead) (c.ws as unknown as { _socket: { pause: () => void } })._socket.pause()
  // mute clients stop talking too (any message would count as a sign of life)
  const gone = [...dead, ...mute, phase].map((c) => c.sub)
  const deadline = silentSince + 6 * INTERVAL + 1000
  while (gone.some((sub) => !closes.has(sub)) && Date.now() < deadline) await sleep(5)

  for (const sub of gone) {
    const closed = closes.get(sub)
    const after = closed === undefined ? undefined : closed.at - (sub === 'p1' ? phaseSilentAt : silentSince)
    t.ok(after !== undefined && after <= 2 * INTERVAL + 250, `${sub} terminated ${after} ms after going silent (interval ${INTERVAL} ms)`)
    t.equal(closed?.code, 1006, `${sub}: terminated, no closing handshake`)
  }
  const phaseAfter = (closes.get('p1')?.at ?? 0) - phaseSilentAt
  t.ok(phaseSilentAt > 0 && phaseAfter >= INTERVAL - 50, `the worst-phase client was not terminated early (${phaseAfter} ms after its last pong)`)
  t.same((await app.realtime.members('room')).map((m) => m.sub).sort(), ['h1', 'h2', 'h3'], 'the silent clients left the room')
  const leaves = (h: Client): any[] => h.messages.filter((m) => m.type === 'presence' && m.data.event === 'leave')
  for (let waited = 0; healthy.some((h) => leaves(h).length < gone.length) && waited < 2000; waited += 5) await sleep(5)
  for (const h of healthy) {
    const left = h.messages.filter((m) => m.type === 'presence' && m.data.event === 'leave').map((m) => m.data.member.sub).sort()
    t.same(left, [...gone].sort(), `${h.sub} saw each silent client leave`)
  }

  // the healthy ones stay connected, idle, through several more sweeps
  await sleep(4 * INTERVAL)
  t.ok(healthy.every((h) => h.ws.readyState === WebSocket.OPEN), 'idle healthy clients are not terminated')
  t.same([...closes.keys()].sort(), [...gone].sort(), 'no healthy client was closed')
  t.equal(app.realtime.stats().connections, 3, 'stats() counts only the live ones')
  for (const c of [...dead, ...mute, phase]) c.ws.terminate()
  for (const h of healthy) h.ws.close()
})
