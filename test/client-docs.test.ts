// docs/client.md documents every error code the client raises, every drop
// reason and every checked option: a new one fails here until it is written down.
import { test } from 'tap'
import { readdirSync, readFileSync } from 'node:fs'

const root = new URL('../', import.meta.url)
const doc = readFileSync(new URL('docs/client.md', root), 'utf8')
const sources = readdirSync(new URL('lib/client/', root))
  .filter((name) => name.endsWith('.ts'))
  .map((name) => readFileSync(new URL(`lib/client/${name}`, root), 'utf8'))
  .join('\n')

function found (pattern: RegExp, text: string): string[] {
  return [...new Set([...text.matchAll(pattern)].map((m) => m[1]))].sort()
}

test('every client error code is in docs/client.md', async (t) => {
  const codes = found(/new RealtimeClientError\('([A-Z_]+)'/g, sources)
  t.ok(codes.length >= 8, `found the codes: ${codes.join(', ')}`)
  for (const code of codes) t.match(doc, `\`${code}\``, code)
})

test('every drop reason is in docs/client.md', async (t) => {
  const [, union] = /export type DropReason = ([^\n]+)/.exec(sources) ?? []
  const reasons = found(/'([a-z_]+)'/g, union ?? '')
  t.same(reasons, ['closed', 'queue_full', 'rate_limited', 'timeout'])
  for (const reason of reasons) t.match(doc, `| \`${reason}\` |`, reason)
})

test('every option createClient checks is in docs/client.md', async (t) => {
  const checks = readFileSync(new URL('lib/client/options.ts', root), 'utf8')
  const options = [...new Set([...found(/(?:positive|object)\('([a-zA-Z.]+)'/g, checks), ...found(/option "([a-zA-Z.]+)"/g, checks)])]
    .filter((name) => !name.startsWith('queue.flush'))
  t.ok(options.length >= 15, `found the options: ${options.join(', ')}`)
  // an object option is documented by its keys (`queue.max`)
  for (const option of options) t.ok(doc.includes(`\`${option}\``) || doc.includes(`\`${option}.`), option)
})

test('every client event is in docs/client.md', async (t) => {
  for (const event of ['open', 'close', 'reconnecting', 'drop', 'resync', 'kicked', 'error']) t.match(doc, `| \`${event}\` |`, event)
})
