import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { CloseCode, ErrorCode, RealtimeError, errors } from '../lib/index.js'
import { errorMessages } from '../lib/errors.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')
// The contract lives beside the repository in this workspace (and in CI), not in a clone elsewhere.
const specUrl = new URL('../../shared/SPEC.md', import.meta.url)
const spec = existsSync(specUrl) ? readFileSync(specUrl, 'utf8') : undefined

t.test('every wire error code is documented in the README and has a message', async (t) => {
  for (const code of Object.values(ErrorCode)) {
    t.match(readme, new RegExp('`' + code + '`'), `README documents ${code}`)
    t.type(errorMessages[code], 'string', `${code} has a default message`)
  }
})

t.test('every close code is documented in the README', async (t) => {
  for (const [name, code] of Object.entries(CloseCode)) {
    t.match(readme, new RegExp('`' + code + '`'), `README documents close code ${code} (${name})`)
  }
})

t.test('every registration and handshake error is documented in the README', async (t) => {
  for (const code of Object.keys(errors)) {
    t.match(readme, new RegExp('`' + code + '`'), `README documents ${code}`)
  }
})

t.test('the code tables match SPEC section 5', { skip: spec === undefined && process.env.CI !== 'true' ? 'SPEC.md is not beside this clone' : false }, async (t) => {
  if (spec === undefined) throw new Error('SPEC.md must be beside the repository in CI')
  const section = spec.slice(spec.indexOf('## 5.'), spec.indexOf('## 6.'))
  const specCodes = [...section.matchAll(/`([A-Z_]{4,})`/g)].map((m) => m[1]).filter((c) => c !== 'CODE')
  t.same([...new Set(specCodes)].sort(), Object.values(ErrorCode).sort(), 'same error codes as SPEC')
  const specClose = [...section.matchAll(/\b(1\d{3}|4\d{3})\b/g)].map((m) => Number(m[1]))
  t.same([...new Set(specClose)].sort(), Object.values(CloseCode).sort(), 'same close codes as SPEC')
})

t.test('registration errors carry codes and statuses', async (t) => {
  const err = new errors.FST_REALTIME_INVALID_OPTION('maxPayload', 'must be a number')
  t.equal(err.code, 'FST_REALTIME_INVALID_OPTION')
  t.match(err.message, /maxPayload/)
  t.equal(new errors.FST_REALTIME_UNAUTHORIZED().statusCode, 401)
  t.equal(new errors.FST_REALTIME_ORIGIN_FORBIDDEN().statusCode, 403)
  t.equal(new errors.FST_REALTIME_USER_LIMIT().statusCode, 429)
  t.equal(new errors.FST_REALTIME_UNAVAILABLE().statusCode, 503)
})

t.test('RealtimeError', async (t) => {
  const plain = new RealtimeError('nope')
  t.equal(plain.code, 'HANDLER_ERROR')
  t.equal(plain.message, 'nope')
  t.equal(plain.details, undefined)
  t.ok(plain instanceof Error)
  const custom = new RealtimeError('full', { code: 'ROOM_FULL', details: [{ max: 2 }] })
  t.equal(custom.code, 'ROOM_FULL')
  t.same(custom.details, [{ max: 2 }])
  t.equal(custom.name, 'RealtimeError')
})

t.test('RealtimeError instanceof holds across copies of the class (ESM and CJS builds)', async (t) => {
  const copy = Object.assign(new Error('x'), { code: 'X' })
  Object.defineProperty(copy, Symbol.for('fastify-realtime.RealtimeError'), { value: true })
  t.ok(copy instanceof RealtimeError, 'a RealtimeError made by another copy is recognised')
  t.notOk(new Error('plain') instanceof RealtimeError)
  t.notOk((null as unknown as object) instanceof RealtimeError)
})
