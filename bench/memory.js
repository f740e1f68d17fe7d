// What one idle connection keeps on a server's heap: heap snapshots before and
// after `count` connections, diffed by constructor, per connection.
//
//   node bench/memory.js [--server realtime] [--count 2000] [--top 25]
import { mkdir, readFile, rm } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { spawnChild } from './lib/ipc.js'
import { SERVERS } from './servers/index.js'

const { values: flags } = parseArgs({
  options: {
    server: { type: 'string', default: 'realtime' },
    count: { type: 'string', default: '2000' },
    top: { type: 'string', default: '25' }
  }
})
const kind = flags.server
if (SERVERS[kind] === undefined) throw new Error(`unknown server ${kind}; one of ${Object.keys(SERVERS).join(', ')}`)
const count = Number(flags.count)

/** Self size and object count by `type:name` of a .heapsnapshot. */
function byConstructor (snapshot) {
  const { node_fields: fields, node_types: [types] } = snapshot.snapshot.meta
  const width = fields.length
  const typeAt = fields.indexOf('type')
  const nameAt = fields.indexOf('name')
  const sizeAt = fields.indexOf('self_size')
  const out = new Map()
  const nodes = snapshot.nodes
  for (let i = 0; i < nodes.length; i += width) {
    const type = types[nodes[i + typeAt]]
    // strings and code are grouped by type, objects by constructor name
    const name = type === 'object' || type === 'closure' || type === 'native' ? snapshot.strings[nodes[i + nameAt]] : ''
    const key = `${type}${name === '' ? '' : ' ' + name}`
    const entry = out.get(key) ?? { size: 0, count: 0 }
    entry.size += nodes[i + sizeAt]
    entry.count++
    out.set(key, entry)
  }
  return out
}

const dir = fileURLToPath(new URL(`results/memory/${kind}/`, import.meta.url))
await rm(dir, { recursive: true, force: true })
await mkdir(dir, { recursive: true })
const server = spawnChild(fileURLToPath(new URL('server-host.js', import.meta.url)), { args: [kind], execArgv: ['--expose-gc'] })
const loadgen = spawnChild(fileURLToPath(new URL('loadgen.js', import.meta.url)))
let files
let usage
try {
  const { port, path } = await server.ready
  await loadgen.ready
  const before = await server.call('memory')
  const first = await server.call('snapshot', { file: `${dir}before.heapsnapshot` }, 120_000)
  await loadgen.call('connect', { port, path, client: SERVERS[kind].client, count, concurrency: 32 }, 120_000)
  const after = await server.call('memory')
  const second = await server.call('snapshot', { file: `${dir}after.heapsnapshot` }, 120_000)
  files = [first, second]
  usage = { heap: (after.heapUsed - before.heapUsed) / count, rss: (after.rss - before.rss) / count }
  await loadgen.call('close')
} finally {
  await loadgen.stop()
  await server.stop()
}

const [a, b] = await Promise.all(files.map(async (f) => byConstructor(JSON.parse(await readFile(f, 'utf8')))))
const rows = []
let total = 0
for (const [key, entry] of b) {
  const base = a.get(key) ?? { size: 0, count: 0 }
  const size = (entry.size - base.size) / count
  total += size
  rows.push({ key, size, count: (entry.count - base.count) / count })
}
rows.sort((x, y) => y.size - x.size)
console.log(`${SERVERS[kind].label}: ${count} idle connections; heapUsed ${Math.round(usage.heap)} B/conn, RSS ${Math.round(usage.rss)} B/conn; snapshot diff ${Math.round(total)} B/conn`)
console.log('\n  B/conn  objects/conn  type and constructor')
for (const r of rows.slice(0, Number(flags.top))) {
  console.log(`${Math.round(r.size).toString().padStart(8)}  ${r.count.toFixed(2).padStart(12)}  ${r.key}`)
}
console.log(`\nsnapshots: bench/results/memory/${kind}/ (open in Chrome DevTools > Memory)`)
