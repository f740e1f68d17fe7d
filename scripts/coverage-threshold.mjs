// Fails `npm test` when lines or branches of lib/ fall under 95% (tap itself only knows 100% or any).
import { readFileSync } from 'node:fs'
import { relative } from 'node:path'

const THRESHOLD = 95
const summary = JSON.parse(readFileSync('.tap/report/coverage-summary.json', 'utf8'))
const totals = { lines: { covered: 0, total: 0 }, branches: { covered: 0, total: 0 } }
for (const [file, entry] of Object.entries(summary)) {
  if (file === 'total') continue
  const path = relative(process.cwd(), file)
  // the Redis adapter is covered by its own suite (npm run test:redis), which needs a Redis server
  if (!path.startsWith('lib/') || path.startsWith('lib/adapters/redis')) continue
  for (const kind of ['lines', 'branches']) {
    totals[kind].covered += entry[kind].covered
    totals[kind].total += entry[kind].total
  }
}
let failed = false
for (const [kind, { covered, total }] of Object.entries(totals)) {
  const pct = total === 0 ? 100 : (covered / total) * 100
  console.log(`coverage of lib/ ${kind}: ${pct.toFixed(2)}% (${covered}/${total}); required ${THRESHOLD}%`)
  if (pct < THRESHOLD) failed = true
}
if (failed) process.exit(1)
