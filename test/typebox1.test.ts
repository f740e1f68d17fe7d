// Schemas built with TypeBox 1.x (the `typebox` package) work wherever
// @sinclair/typebox 0.34 ones do (lib/schema.ts): the same error codes and the
// same `details` paths, from the ESM and the CommonJS build.
import t from 'tap'
import { createRequire } from 'node:module'
import { existsSync } from 'node:fs'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import { Type } from '@sinclair/typebox'
import { Type as T1 } from 'typebox'
import { errorsLike034, isTypeBox1 } from '../lib/schema.js'
import { connect } from '../lib/testing/index.js'
import { SECRET, build } from './helpers.js'
import { setup } from './protocol-helpers.js'

// The first test runs before anything in this process loaded TypeBox 1.x's
// compiler: a route added with app.realtime.route() after registration waits
// for it, and is compiled by ready.
t.test('a 1.x route added after registration compiles by ready (the compiler loads on first need)', async (t) => {
  const app = await build(t, { heartbeat: false })
  app.realtime.route({
    path: '/late',
    emits: { tick: T1.Integer() },
    messages: { add: { schema: T1.Object({ a: T1.Number(), b: T1.Number() }), ack: T1.Number(), handler: (_c, d) => d.a + d.b } }
  })
  t.throws(() => app.realtime.broadcast('r', 'tick', 1), /before its compiler loaded; await app\.ready\(\)/, 'too early to check')
  await app.ready()
  const c = await connect(app, '/late', { user: { sub: 'a' } })
  t.after(() => c.close())
  t.equal(await c.request('add', { a: 1, b: 2 }), 3)
  await t.rejects(c.request('add', { a: 1 } as any), { code: 'INVALID_MESSAGE', details: [{ path: '/b' }] })
  t.throws(() => app.realtime.broadcast('r', 'tick', 1.5), { code: 'FST_REALTIME_INVALID_OUTGOING' })
})

t.test('a 1.x schema TypeBox cannot compile fails with FST_REALTIME_INVALID_ROUTE: at route(), or by ready when deferred', async (t) => {
  const bad = T1.Unsafe({ type: 'string', pattern: '(' })
  const app = await build(t, { heartbeat: false })
  // the compiler is loaded by now (the test above): the failure is immediate
  t.throws(() => app.realtime.route({ path: '/bad', messages: { m: { schema: bad, handler: () => 1 } } }), {
    code: 'FST_REALTIME_INVALID_ROUTE',
    message: /route "\/bad": message "m": its schema is not one TypeBox can compile/
  })
  await t.rejects(build(t, { routes: [{ path: '/bad', emits: { e: bad } }] }), { code: 'FST_REALTIME_INVALID_ROUTE', message: /emitted type "e"/ })
  // a fresh copy of lib/schema.js has not loaded it: the failure comes from settled()
  const { SchemaCompiler } = await t.mockImport<typeof import('../lib/schema.js')>('../lib/schema.js')
  const schemas = new SchemaCompiler()
  const check = schemas.compile(bad, (err) => new Error(`wrapped: ${(err as Error).message}`))
  t.throws(() => check.Check('x'), /await app\.ready\(\)/)
  await t.rejects(schemas.settled(), { message: /^wrapped: Invalid regular expression/ })
})

t.test('1.x schemas are told from 0.34 ones and plain JSON Schemas', async (t) => {
  t.ok(isTypeBox1(T1.String()))
  t.ok(isTypeBox1(T1.Object({ a: T1.Optional(T1.String()) })))
  t.ok(isTypeBox1(T1.Unsafe({ type: 'string' })), 'Type.Unsafe has no ~kind but ~unsafe')
  t.notOk(isTypeBox1(Type.String()))
  t.notOk(isTypeBox1({ type: 'string' }))
  t.notOk(isTypeBox1(null))
  t.notOk(isTypeBox1('string'))
})

/** A schema and the data to try against it; built once with each TypeBox. */
function shapes (T: typeof Type) {
  return {
    object: T.Object({
      name: T.String({ minLength: 2 }),
      age: T.Optional(T.Integer({ minimum: 0 })),
      tags: T.Array(T.Object({ id: T.Integer() })),
      kind: T.Union([T.Literal('a'), T.Literal('b')]),
      'a/b~c': T.Optional(T.Boolean())
    }, { additionalProperties: false }),
    nested: T.Object({ inner: T.Object({ x: T.Number(), y: T.Number() }) }),
    scalar: T.Number({ maximum: 10 })
  }
}
const values: Array<[keyof ReturnType<typeof shapes>, unknown]> = [
  ['object', {}],
  ['object', { name: 1, tags: [{ id: 1.5 }, {}], kind: 'z', extra: true }],
  ['object', { name: 'ok', tags: [], kind: 'a', age: -1, 'a/b~c': 'no' }],
  ['object', null],
  ['object', []],
  ['nested', { inner: {} }],
  ['nested', { inner: { x: 'x' } }],
  ['nested', 5],
  ['scalar', 11],
  ['scalar', 'eleven'],
  ['scalar', undefined]
]

t.test('the same answers as 0.34 on the wire: error code, details shape, and every path', async (t) => {
  const v034 = shapes(Type)
  const v1 = shapes(T1 as unknown as typeof Type)
  const messages = (set: ReturnType<typeof shapes>): Record<string, { schema: unknown, handler: () => string }> =>
    Object.fromEntries(Object.entries(set).map(([name, schema]) => [name, { schema, handler: () => 'ok' }]))
  const app = await setup(t, { routes: [{ path: '/034', messages: messages(v034) as any }, { path: '/v1', messages: messages(v1) as any }] })
  const a = await connect(app, '/034', { user: { sub: 'a' } })
  const b = await connect(app, '/v1', { user: { sub: 'b' } })
  t.after(() => Promise.all([a.close(), b.close()]))
  for (const [type, value] of values) {
    const label = `${type} ${JSON.stringify(value)}`
    const [old, now] = await Promise.all([a, b].map(async (c) => await c.request(type, value as any).then(() => undefined, (err) => err)))
    t.equal(now?.code, old?.code, `${label}: ${String(old?.code)}`)
    t.equal(old?.code, 'INVALID_MESSAGE', `${label}: rejected`)
    for (const detail of now.details) t.same(Object.keys(detail).sort(), ['message', 'path'], `${label}: { path, message }`)
    const paths = (err: any): string[] => [...new Set<string>(err.details.map((d: any) => d.path))].sort()
    t.same(paths(now), paths(old), `${label}: the same paths (${paths(old).join(' ')})`)
  }
  // the details of the first case, spelled out
  const missing = await b.request('object', {} as any).catch((err) => err)
  t.same(missing.details.map((d: any) => d.path), ['/name', '/tags', '/kind'], 'each missing property at its own path')
  const escaped = await b.request('object', { name: 'ok', tags: [], kind: 'a', 'a/b~c': 1 } as any).catch((err) => err)
  t.same(escaped.details.map((d: any) => d.path), ['/a~1b~0c'], 'JSON pointer escapes, as 0.34')
  t.same(await b.request('object', { name: 'ok', tags: [{ id: 1 }], kind: 'b' } as any), 'ok', 'valid data passes')
})

t.test('errorsLike034 maps Ajv-shaped errors', async (t) => {
  const list = [
    { keyword: 'required', schemaPath: '#', instancePath: '/o', params: { requiredProperties: ['a', 'b/c'] }, message: 'must have required properties a, b/c' },
    { keyword: 'boolean', schemaPath: '#/properties/o/additionalProperties', instancePath: '/o/z', params: {}, message: 'schema is false' },
    { keyword: 'additionalProperties', schemaPath: '#/properties/o', instancePath: '/o', params: { additionalProperties: ['z'] }, message: 'must not have additional properties' },
    { keyword: 'const', schemaPath: '#/properties/u/anyOf/0', instancePath: '/u', params: {}, message: 'must be equal to constant' },
    { keyword: 'anyOf', schemaPath: '#/properties/u', instancePath: '/u', params: {}, message: 'must match a schema in anyOf' },
    { keyword: 'anyOf', schemaPath: '#/properties/u', instancePath: '/u', params: {}, message: 'must match a schema in anyOf' },
    { keyword: 'type', schemaPath: '#', instancePath: '', params: {}, message: 'must be object' }
  ]
  t.same([...errorsLike034(list)], [
    { path: '/o/a', message: "must have required property 'a'" },
    { path: '/o/b~1c', message: "must have required property 'b/c'" },
    { path: '/o/z', message: 'must not be present (no additional properties)' },
    { path: '/u', message: 'must match a schema in anyOf' },
    { path: '', message: 'must be object' }
  ])
})

t.test('join data, emits and acks of 1.x schemas (0.34 behaviour in ../outgoing.test.ts)', async (t) => {
  const app = await setup(t, {
    routes: [{
      path: '/r',
      emits: { note: T1.Object({ text: T1.String() }) },
      messages: { ask: { schema: T1.String(), ack: T1.Object({ answer: T1.String() }), handler: (_c: unknown, q: string) => q === 'bad' ? { answer: 1 } : { answer: q } } }
    }]
  })
  const c = await connect(app, '/r', { user: { sub: 'a' } })
  t.after(() => c.close())
  t.same(await c.request('ask', 'q'), { answer: 'q' })
  await t.rejects(c.request('ask', 'bad'), { code: 'HANDLER_ERROR' })
  t.throws(() => app.realtime.sendToUser('a', 'note', { text: 2 } as any), { code: 'FST_REALTIME_INVALID_OUTGOING', message: /"note".*\/text/ })
  app.realtime.sendToUser('a', 'note', { text: 'hi' })
  t.same((await c.next('note')).data, { text: 'hi' })
})

t.test('the CommonJS build takes 1.x schemas too (TypeBox 1.x is ESM only)', { skip: existsSync(new URL('../dist/cjs/main.js', import.meta.url)) ? false : 'run npm run build first' }, async (t) => {
  const require = createRequire(import.meta.url)
  const cjs = require('../dist/cjs/main.js')
  const testing = require('../dist/cjs/testing/index.js')
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(cjs, {
    heartbeat: false,
    routes: [{
      path: '/cjs',
      emits: { tick: T1.Integer() },
      messages: { pair: { schema: T1.Object({ a: T1.String(), b: T1.String() }), ack: T1.String(), handler: (_c: unknown, d: any) => d.a + d.b } }
    }]
  })
  await app.ready()
  const c = await testing.connect(app, '/cjs', { user: { sub: 'a' } })
  t.after(() => c.close())
  t.equal(await c.request('pair', { a: 'x', b: 'y' }), 'xy')
  const err = await c.request('pair', { a: 1 }).catch((e: any) => e)
  t.equal(err.code, 'INVALID_MESSAGE')
  t.same([...new Set(err.details.map((d: any) => d.path))].sort(), ['/a', '/b'])
  t.throws(() => app.realtime.broadcast('r', 'tick', 0.5), { code: 'FST_REALTIME_INVALID_OUTGOING' })
})

t.test('without the typebox package, a 1.x schema fails register with FST_REALTIME_MISSING_PEER', async (t) => {
  const { SchemaCompiler } = await t.mockImport<typeof import('../lib/schema.js')>('../lib/schema.js', {
    // what a missing package looks like to import(): it throws
    'typebox/compile': { get Compile () { throw Object.assign(new Error("Cannot find package 'typebox'"), { code: 'ERR_MODULE_NOT_FOUND' }) } }
  })
  const schemas = new SchemaCompiler()
  await t.rejects(schemas.prepare([T1.String()]), { code: 'FST_REALTIME_MISSING_PEER', message: /"typebox"/ })
  t.resolves(schemas.prepare([Type.String()]), '0.34 schemas need nothing more')
})
