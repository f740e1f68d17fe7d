// Summaries of a V8 .cpuprofile: self time by function, by area, and the
// inclusive time of the functions on a broadcast's path.

/** Where a call frame's code lives, for grouping. */
function area (url, name) {
  if (url === '') return name.startsWith('(') ? name : '(native)'
  if (url.includes('/fastify-realtime/') || url.includes('/dist/esm/')) return 'fastify-realtime'
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(url)
  if (pkg !== null) return pkg[1]
  if (url.startsWith('node:')) return 'node core'
  if (url.includes('/bench/')) return 'bench harness'
  return url
}

function shortUrl (url) {
  const at = url.lastIndexOf('node_modules/')
  if (at >= 0) return url.slice(at + 'node_modules/'.length)
  const dist = url.indexOf('/dist/esm/')
  if (dist >= 0) return 'dist/esm/' + url.slice(dist + '/dist/esm/'.length)
  const bench = url.indexOf('/bench/')
  if (bench >= 0) return url.slice(bench + 1)
  return url
}

function label (frame) {
  const name = frame.functionName === '' ? '(anonymous)' : frame.functionName
  return frame.url === '' ? name : `${name} ${shortUrl(frame.url)}:${frame.lineNumber + 1}`
}

const ROOTS = ['onMessage', '#onMessage', 'dispatchMessage', 'broadcast', 'serialize', 'deliverToRoom', 'textFrame', 'writeFrame', 'write', 'processImmediate', '#flush', 'release', 'concat', 'uncork', 'writev', 'writeBuffer']

function pct (part, whole) {
  return `${(100 * part / whole).toFixed(1).padStart(5)}%`
}

/**
 * Text report: top self time, self time by area, inclusive time of `roots`.
 * Only samples stamped within [from, to] (µs, the profile's clock) count.
 */
export function summarize (profile, { from = -Infinity, to = Infinity, top = 25, roots = ROOTS }) {
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]))
  const parent = new Map()
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id)

  // self time per node from the sample stream
  const self = new Map()
  let counted = 0
  let stamp = profile.startTime
  for (let i = 0; i < profile.samples.length; i++) {
    stamp += profile.timeDeltas[i]
    if (stamp < from || stamp > to) continue
    counted++
    const id = profile.samples[i]
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0))
  }
  let total = 0
  let idle = 0
  const byFunction = new Map()
  const byArea = new Map()
  for (const [id, micros] of self) {
    const frame = nodes.get(id).callFrame
    total += micros
    if (frame.functionName === '(idle)') idle += micros
    const key = label(frame)
    byFunction.set(key, (byFunction.get(key) ?? 0) + micros)
    const where = area(frame.url, frame.functionName)
    byArea.set(where, (byArea.get(where) ?? 0) + micros)
  }
  const busy = total - idle

  // inclusive time: a sample counts once for each distinct root name on its stack
  const inclusive = new Map(roots.map((r) => [r, 0]))
  for (const [id, micros] of self) {
    const seen = new Set()
    for (let at = id; at !== undefined; at = parent.get(at)) {
      const name = nodes.get(at).callFrame.functionName
      if (inclusive.has(name) && !seen.has(name)) {
        seen.add(name)
        inclusive.set(name, inclusive.get(name) + micros)
      }
    }
  }

  const lines = [`samples: ${counted}, busy ${(busy / 1000).toFixed(0)} ms of ${(total / 1000).toFixed(0)} ms profiled (percentages of busy time)`, '', 'self time by area:']
  for (const [where, micros] of [...byArea].filter(([w]) => w !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, 12)) {
    lines.push(`  ${pct(micros, busy)}  ${where}`)
  }
  lines.push('', `top ${top} functions by self time:`)
  for (const [key, micros] of [...byFunction].filter(([k]) => k !== '(idle)').sort((a, b) => b[1] - a[1]).slice(0, top)) {
    lines.push(`  ${pct(micros, busy)}  ${key}`)
  }
  lines.push('', 'inclusive time of these functions (by name):')
  for (const [name, micros] of inclusive) {
    if (micros > 0) lines.push(`  ${pct(micros, busy)}  ${name}`)
  }
  return lines.join('\n')
}
