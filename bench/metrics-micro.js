// What the metrics option adds per incoming message, in-process and without
// sockets: the handler run (timed for handler_duration_seconds) and the count
// by route and type. Nothing is added per delivery (messages_sent_total is the
// hub's own counter, read at scrape time), so a broadcast to n members pays
// this once: divide by n for the cost per delivery.
//
//   npm run build && node bench/metrics-micro.js [--ops 2000000]
import { parseArgs } from 'node:util'
import { Registry } from 'prom-client'
import { invokeHandler } from '../dist/esm/diagnostics.js'
import { createMetrics } from '../dist/esm/metrics.js'

const { values: flags } = parseArgs({ options: { ops: { type: 'string', default: '2000000' } } })
const ops = Number(flags.ops)

const source = { connections: () => [], stats: () => ({ rooms: 0, messagesOut: 0, adapter: { connected: true } }) }
const metrics = await createMetrics({ registry: new Registry(), prefix: 'bench_' }, source)
metrics.addRoute('/rt')
metrics.attach()
const route = { path: '/rt', messages: new Map([['publish', {}]]) }
const conn = { route }
const handler = () => undefined
const msg = { type: 'publish', room: 'r', data: {} }

/** CPU ns per call of `fn`, after a warm-up; the best of five runs (the least disturbed by the rest of the machine). */
function measure (fn) {
  for (let i = 0; i < ops / 10; i++) fn()
  let best = Infinity
  for (let run = 0; run < 5; run++) {
    const t0 = process.cpuUsage()
    for (let i = 0; i < ops; i++) fn()
    const t = process.cpuUsage(t0)
    best = Math.min(best, (t.user + t.system) * 1000 / ops)
  }
  return best
}

const off = measure(() => invokeHandler(conn, handler, msg, undefined))
const on = measure(() => invokeHandler(conn, handler, msg, metrics))
const received = measure(() => metrics.received(route, 'publish'))
const added = on - off + received
console.log(`handler run: ${off.toFixed(1)} ns with metrics off, ${on.toFixed(1)} ns on; count by route and type: ${received.toFixed(1)} ns`)
console.log(`added per incoming message: ${added.toFixed(0)} ns; per delivery of a broadcast to 1,000: ${(added / 1000).toFixed(2)} ns, to 5,000: ${(added / 5000).toFixed(2)} ns`)
metrics.detach()
