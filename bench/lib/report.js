// The table, the ratios and the verdict on each target of the issue.
import { median } from './stats.js'

/** Rows of the table: where each figure comes from and how to print it. */
export function rowsFor (config) {
  const small = config.smallRoom
  const big = config.connections - 1
  const pairs = config.chatClients / 2
  const paced = `${small}, paced ${Math.round(1000 / config.pacedIntervalMs)} msg/s`
  return [
    { id: 'fanoutSmall.perSecond', label: `fan-out ${small}: deliveries/s`, digits: 0 },
    { id: 'fanoutSmall.p50', label: `fan-out ${small}: p50 latency ms`, digits: 1 },
    { id: 'fanoutSmall.p99', label: `fan-out ${small}: p99 latency ms`, digits: 1 },
    { id: 'fanoutSmall.cpuPerDelivery', label: `fan-out ${small}: server CPU µs/delivery`, digits: 2 },
    { id: 'paced.p50', label: `fan-out ${paced}: p50 ms`, digits: 2 },
    { id: 'paced.p99', label: `fan-out ${paced}: p99 ms`, digits: 2 },
    { id: 'fanoutBig.perSecond', label: `fan-out ${big}: deliveries/s`, digits: 0 },
    { id: 'fanoutBig.p50', label: `fan-out ${big}: p50 latency ms`, digits: 1 },
    { id: 'fanoutBig.p99', label: `fan-out ${big}: p99 latency ms`, digits: 1 },
    { id: 'fanoutBig.cpuPerDelivery', label: `fan-out ${big}: server CPU µs/delivery`, digits: 2 },
    { id: 'rooms.perSecond', label: `rooms ${pairs}x2: messages/s`, digits: 0 },
    { id: 'rooms.p99', label: `rooms ${pairs}x2: p99 latency ms`, digits: 1 },
    { id: 'rooms.cpuPerDelivery', label: `rooms ${pairs}x2: server CPU µs/msg`, digits: 2 },
    { id: 'connect.perSecond', label: `connect storm ${config.connections}: upgrades/s`, digits: 0 },
    { id: 'connect.openP99', label: 'connect storm: p99 time to open ms', digits: 0 },
    { id: 'connect.serverCpuPerConnection', label: 'connect storm: server CPU µs/upgrade', digits: 0 },
    { id: 'connect.heapPerConnection', label: `memory: heap B/idle conn (${config.connections})`, digits: 0 },
    { id: 'connect.heapPerConnectionInRoom', label: 'memory: heap B/conn in one room', digits: 0 },
    { id: 'connect.rssPerConnection', label: `memory: RSS B/idle conn (${config.connections})`, digits: 0 }
  ]
}

/** Median of each row's figure per server over the rounds. */
export function medians (rows, samples, servers) {
  const out = {}
  for (const row of rows) {
    const [phase, metric] = row.id.split('.')
    out[row.id] = {}
    for (const server of servers) {
      const values = (samples[phase]?.[server] ?? []).map((r) => r[metric])
      out[row.id][server] = median(values)
    }
  }
  return out
}

function format (value, digits) {
  if (!Number.isFinite(value)) return 'n/a'
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function ratio (a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN
}

/** The table as markdown: one column per server, then the plugin over each other server. */
export function table (rows, figures, servers, subject, labels) {
  const others = servers.includes(subject) ? servers.filter((s) => s !== subject) : []
  const header = ['metric', ...servers.map((s) => labels[s]), ...others.map((s) => `rt / ${labels[s]}`)]
  const lines = [header]
  for (const row of rows) {
    const f = figures[row.id]
    lines.push([
      row.label,
      ...servers.map((s) => format(f[s], row.digits)),
      ...others.map((s) => {
        const r = ratio(f[subject], f[s])
        return Number.isFinite(r) ? `${r.toFixed(2)}x` : 'n/a'
      })
    ])
  }
  const widths = header.map((_, i) => Math.max(...lines.map((l) => l[i].length)))
  const render = (l) => '| ' + l.map((cell, i) => i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join(' | ') + ' |'
  const rule = '|' + widths.map((w, i) => i === 0 ? '-'.repeat(w + 2) : '-'.repeat(w + 1) + ':').join('|') + '|'
  return [render(header), rule, ...lines.slice(1).map(render)].join('\n')
}

/**
 * The targets, each with its figure: the ratio plugin/other, with
 * `min` (at least) or `max` (at most) as the bound.
 */
export function targets (figures, config, subject) {
  const small = config.smallRoom
  const big = config.connections - 1
  const list = []
  for (const [phase, n] of [['fanoutSmall', small], ['fanoutBig', big]]) {
    list.push(
      { target: `fan-out ${n}: deliveries/s >= 6x Socket.IO`, id: `${phase}.perSecond`, other: 'socketio', min: 6 },
      { target: `fan-out ${n}: deliveries/s >= 0.8x ws pre-framed`, id: `${phase}.perSecond`, other: 'ws-preframed', min: 0.8 },
      { target: `fan-out ${n}: server CPU/delivery <= 0.15x Socket.IO`, id: `${phase}.cpuPerDelivery`, other: 'socketio', max: 0.15 }
    )
  }
  for (const [phase, n] of [['fanoutSmall', small], ['fanoutBig', big]]) {
    // figures are plugin / other: history on >= 0.8x history off is off / on <= 1.25
    list.push(
      { target: `fan-out ${n}: deliveries/s with history >= 0.8x without (rt / rt+history <= 1.25)`, id: `${phase}.perSecond`, other: 'realtime-history', max: 1.25 },
      { target: `fan-out ${n}: server CPU/delivery with history <= 1.25x without (rt / rt+history >= 0.8)`, id: `${phase}.cpuPerDelivery`, other: 'realtime-history', min: 0.8 }
    )
  }
  list.push(
    { target: `fan-out ${small}, paced: p99 latency <= raw ws (loop)`, id: 'paced.p99', other: 'ws-loop', max: 1 },
    { target: `fan-out ${small}, burst: p99 latency <= raw ws (loop)`, id: 'fanoutSmall.p99', other: 'ws-loop', max: 1 },
    { target: 'connect storm: server CPU/upgrade with JWT <= 1.3x raw ws (no auth)', id: 'connect.serverCpuPerConnection', other: 'ws-loop', max: 1.3 },
    { target: 'heap per idle connection <= 1.2x raw ws', id: 'connect.heapPerConnection', other: 'ws-loop', max: 1.2 },
    { target: 'heap per connection in one room <= 1.3x raw ws', id: 'connect.heapPerConnectionInRoom', other: 'ws-loop', max: 1.3 },
    { target: `fan-out ${small}: server CPU/delivery <= ws pre-framed (the ceiling)`, id: 'fanoutSmall.cpuPerDelivery', other: 'ws-preframed', max: 1 },
    { target: `fan-out ${big}: server CPU/delivery <= ws pre-framed (the ceiling)`, id: 'fanoutBig.cpuPerDelivery', other: 'ws-preframed', max: 1 },
    { target: 'connect with JWT >= 1.3x Socket.IO (no auth)', id: 'connect.perSecond', other: 'socketio', min: 1.3 },
    { target: 'connect: server CPU/upgrade with JWT <= Socket.IO/1.3', id: 'connect.serverCpuPerConnection', other: 'socketio', max: 1 / 1.3 },
    { target: 'heap per idle connection <= 0.5x Socket.IO', id: 'connect.heapPerConnection', other: 'socketio', max: 0.5 }
  )
  return list.map((t) => {
    const value = ratio(figures[t.id]?.[subject], figures[t.id]?.[t.other])
    const met = Number.isFinite(value) ? (t.min !== undefined ? value >= t.min : value <= t.max) : null
    return { ...t, ratio: value, met }
  })
}
