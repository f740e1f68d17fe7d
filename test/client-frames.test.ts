// Malformed server frames never crash the client: every field it reads is
// checked, and a frame it cannot use is an `error` event (BAD_FRAME).
import { test } from 'tap'
import fc from 'fast-check'
import { ack, fakeServer, nextEvent, opened, record } from './client-helpers.js'
import { createClient, RealtimeClientError } from '../lib/client/index.js'
import { parseFrame } from '../lib/client/frames.js'

const MALFORMED = [
  '{"type":"error","code":{"toString":1}}',
  '{"type":"error","code":{"toString":1},"message":{"toString":1},"id":{"valueOf":1}}',
  '{"type":"error"}',
  '{"type":"error","code":""}',
  `{"type":"error","code":"${'C'.repeat(200)}"}`,
  '{"type":"error","code":"X","message":{"a":1}}',
  '{"type":"error","code":"X","details":"not a list"}',
  '{"type":"ack","id":{"x":1}}',
  '{"type":"ack","id":[1]}',
  '{"type":"ack","id":true}',
  '{"type":123}',
  '{"type":""}',
  `{"type":"${'t'.repeat(5000)}"}`,
  '{"type":["news"]}',
  '{"type":"news","room":42}',
  '{"type":"news","room":""}',
  '{"type":"news","room":"r","offset":"7"}',
  '{"type":"news","room":"r","offset":-1}',
  '{"type":"news","room":"r","offset":1.5}',
  '{"type":"news","room":"r","offset":1e300}',
  '{"type":"news","offset":3}',
  '{"type":"resync","room":"r","data":{"epoch":5,"offset":0}}',
  '{"type":"resync","room":"r","data":{"epoch":"","offset":0}}',
  `{"type":"resync","room":"r","data":{"epoch":"${'e'.repeat(65)}","offset":0}}`,
  '{"type":"resync","room":"r"}',
  '{"type":"resync","data":{"epoch":"e","offset":0}}',
  '{"type":"kicked","room":"r","data":null}',
  '{"type":"kicked","room":"r","data":{"code":7}}',
  '{"type":"kicked","data":{"code":"LEFT"}}',
  '{"type":"open"}',
  '{"type":"close","data":{"code":1000,"reason":"fake"}}',
  '{"type":"reconnecting","data":{"attempt":1,"delay":0}}',
  '{"type":"drop","data":{"reason":"closed"}}',
  '[1,2,3]',
  '"a string"',
  'true',
  '',
  '{"type":"news"'
]

test('each malformed frame is one BAD_FRAME error; the client stays open and works', async (t) => {
  const server = await fakeServer(t, (link) => {
    link.socket.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      if (frame.type === 'echo') ack(link, frame, frame.data)
    })
    for (const junk of MALFORMED) link.send(junk)
    link.send(`{"type":"error","code":"BIG","message":"${'m'.repeat(100_000)}"}`)
    link.send('{"type":"news","__proto__":{"polluted":true},"data":{"title":"after the junk"}}')
  })
  const client = createClient(server.url, { heartbeat: false, reconnect: false })
  t.after(() => client.close())
  const fake = ['open', 'close', 'reconnecting', 'drop']
  const seen = record(client, ['error', 'news', ...fake])
  await nextEvent(client, 'news')
  const errors = seen.filter(([type]) => type === 'error').map(([, err]) => err as RealtimeClientError)
  t.equal(errors.length, MALFORMED.length + 1, 'one error per frame')
  t.ok(errors.slice(0, -1).every((err) => err instanceof RealtimeClientError && err.code === 'BAD_FRAME'), 'the malformed ones are BAD_FRAME')
  const big = errors[errors.length - 1]
  t.equal(big.code, 'BIG', 'a well-formed error with a huge message is the server\'s error')
  t.equal(big.message.length, 8192, 'its message cut to 8 KiB')
  t.same(seen.filter(([type]) => fake.includes(type)).map(([type]) => type), ['open'], 'no server frame passed for a client event')
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'no prototype pollution')
  t.equal(client.state, 'open')
  t.same(await client.request('echo', { ok: 1 }), { ok: 1 }, 'still works')
})

test('a malformed join ack: the join resolves, its offset and epoch are ignored, and that is an error event', async (t) => {
  const server = await fakeServer(t, (link) => {
    link.socket.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      if (frame.type === 'join') ack(link, frame, { room: frame.room, offset: 'x', epoch: { e: 1 } })
    })
  })
  const client = createClient(server.url, { heartbeat: false, reconnect: { base: 1, cap: 5 } })
  t.after(() => client.close())
  const errors = record(client, ['error'])
  const joined = await client.join('r')
  t.same(joined, { room: 'r', offset: 'x', epoch: { e: 1 } }, 'the ack data as the server sent it')
  t.equal(errors.length, 1)
  t.equal(errors[0][1].code, 'BAD_FRAME')
  ;(await server.link(0)).socket.terminate()
  const rejoin = await (await server.link(1)).received.type('join', 'r')
  t.equal(rejoin.data, undefined, 'no position was taken from it: the re-join asks for nothing')
})

test('a pending request is untouched by a malformed error carrying its id', async (t) => {
  const server = await fakeServer(t, (link) => {
    link.socket.on('message', (raw) => {
      const frame = JSON.parse(raw.toString())
      link.send({ type: 'error', id: frame.id, code: { toString: 1 } })
      link.send({ type: 'ack', id: frame.id, data: 'fine' })
    })
  })
  const client = createClient(server.url, { heartbeat: false, reconnect: false })
  t.after(() => client.close())
  await opened(client)
  const errors = record(client, ['error'])
  t.equal(await client.request('x', 1), 'fine')
  t.equal(errors.length, 1)
})

test('parseFrame never throws, whatever JSON arrives', async (t) => {
  const json = fc.jsonValue({ maxDepth: 4 })
  const envelopeLike = fc.record({
    type: fc.oneof(fc.constantFrom('ack', 'error', 'pong', 'resync', 'kicked', 'news', 'open'), fc.string(), json),
    room: fc.oneof(fc.string(), json),
    id: json,
    code: fc.oneof(fc.string(), json),
    message: json,
    details: json,
    offset: fc.oneof(fc.integer(), json),
    data: fc.oneof(json, fc.record({ epoch: json, offset: json, code: json }))
  }, { requiredKeys: [] })
  fc.assert(fc.property(fc.oneof(json, envelopeLike), (value) => {
    const frame = parseFrame(JSON.stringify(value))
    return typeof frame.kind === 'string'
  }), { numRuns: 2000 })
  t.equal(parseFrame(null).kind, 'bad', 'a binary frame')
})
