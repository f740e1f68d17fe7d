import t from 'tap'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

// The Redis suite runs against ioredis 5 (`npm run test:redis`) and ioredis 6
// (`npm run test:redis:ioredis6`, which sets IOREDIS_MAJOR=6): this says which one
// the adapter and the tests really loaded.

t.test('the suite runs against the ioredis major it was asked for', async (t) => {
  const entry = fileURLToPath(import.meta.resolve('ioredis'))
  const manifest = entry.slice(0, entry.lastIndexOf('/built/')) + '/package.json'
  const { version } = JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }
  const wanted = process.env.IOREDIS_MAJOR ?? '5'
  t.equal(version.split('.')[0], wanted, `ioredis ${version}`)
  const { Redis } = await import('ioredis')
  t.type(new Redis({ lazyConnect: true }).xadd, 'function', 'the commands the adapter uses exist')
})
