import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

// The published .d.ts are semver surface: users see what `app.realtime`, `conn`
// and the exports document, nothing of the plugin's internals. This reads every
// declaration file reachable from the package's entry points (after `npm run build`).

const root = fileURLToPath(new URL('..', import.meta.url))
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'))

/** Names of internal state and methods that must never show in a published type (the hub's room registry is `RoomRegistry`: `registry` is the metrics option's, SPEC 12). */
const INTERNAL = [
  'RoomRegistry', 'writer', 'limits', 'counters', 'closing', 'foreignWebsocket', 'joinRoom', 'leaveRoom', 'leaveAll',
  'addConnection', 'removeConnection', 'connectionClosed', 'pending', 'turnBytes', 'rateStart', 'rateCount',
  'writeFrame', 'setExpiry', 'sendPayload', 'sendError', 'releaseHeld', 'heard', 'readMark', 'isAlive',
  'slotUser', 'markClosed', 'nextConnectionId', 'deliverToRoom_', 'Hub', 'RealtimeConnection', 'FrameWriter'
]

function entryTypes (): string[] {
  const files: string[] = []
  for (const target of Object.values(pkg.exports) as Array<string | Record<string, { types?: string }>>) {
    if (typeof target === 'string') continue
    for (const condition of Object.values(target)) if (condition.types !== undefined) files.push(join(root, condition.types))
  }
  return files
}

/** Every .d.ts reachable from `start` through relative imports and re-exports. */
function reachable (start: string[]): Set<string> {
  const seen = new Set<string>()
  const queue = [...start]
  while (queue.length > 0) {
    const file = queue.pop() as string
    if (seen.has(file)) continue
    seen.add(file)
    const text = readFileSync(file, 'utf8')
    for (const match of text.matchAll(/(?:from|import)\s*\(?\s*['"](\.{1,2}\/[^'"]+)['"]/g)) {
      const next = resolve(dirname(file), match[1].replace(/\.js$/, '.d.ts'))
      if (existsSync(next)) queue.push(next)
    }
  }
  return seen
}

t.test('the built declaration files show no internal name', async (t) => {
  t.ok(existsSync(join(root, 'dist')), 'dist/ is built (npm test builds first)')
  const files = reachable(entryTypes())
  t.ok(files.size >= 5, `read ${files.size} declaration files`)
  for (const file of files) {
    // declarations only: the docs may say "closing handshake"
    const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '')
    const found = INTERNAL.filter((name) => new RegExp(`\\b${name}\\b`).test(text))
    t.same(found, [], `${file.slice(root.length)} exposes no internal name`)
  }
})
