import t from 'tap'
import { Type } from '@sinclair/typebox'
import WebSocket from 'ws'
import {
  MAX_ROOM_LENGTH, PONG, compileSchema, parseEnvelope, roomCheck, schemaErrors, serialize, serializeAck, serializeError
} from '../lib/envelope.js'
import { inject, sign } from './helpers.js'
import { settle, setup } from './protocol-helpers.js'

t.test('parseEnvelope', async (t) => {
  t.same(parseEnvelope('{"type":"x"}'), { ok: true, envelope: { type: 'x' } })
  t.same(parseEnvelope('{"type":"x","room":"r","data":[1],"id":"a"}'), { ok: true, envelope: { type: 'x', room: 'r', data: [1], id: 'a' } })
  t.same(parseEnvelope('{"type":"x","id":1.5}'), { ok: true, envelope: { type: 'x', id: 1.5 } })
  // room is shape-checked later, so a bad one is INVALID_ROOM rather than INVALID_ENVELOPE
  t.same(parseEnvelope('{"type":"join","room":5}'), { ok: true, envelope: { type: 'join', room: 5 } })

  t.same(parseEnvelope('{'), { ok: false, code: 'BAD_JSON' })
  t.same(parseEnvelope(''), { ok: false, code: 'BAD_JSON' })
  t.same(parseEnvelope('{"type":"x"} trailing'), { ok: false, code: 'BAD_JSON' })
  for (const text of ['null', '42', '"type"', 'true', '[]', '[{"type":"x"}]', '{}', '{"type":""}', '{"type":5}',
    `{"type":"${'t'.repeat(129)}"}`, '{"type":"x","extra":1}', '{"type":"x","id":{}}', '{"type":"x","id":null}',
    '{"type":"x","id":true}', '{"type":"x","__proto__":{}}']) {
    t.same(parseEnvelope(text), { ok: false, code: 'INVALID_ENVELOPE', id: undefined }, text.slice(0, 40))
  }
  // the id of an otherwise invalid envelope comes back, when it is a valid id
  t.same(parseEnvelope('{"id":7}'), { ok: false, code: 'INVALID_ENVELOPE', id: 7 })
  t.same(parseEnvelope('{"type":"x","id":"a","extra":1}'), { ok: false, code: 'INVALID_ENVELOPE', id: 'a' })
  // an overlong id is not repeated back
  t.same(parseEnvelope(`{"type":"x","id":"${'i'.repeat(129)}"}`), { ok: false, code: 'INVALID_ENVELOPE', id: undefined })
  t.same(parseEnvelope(`{"id":"${'i'.repeat(128)}"}`), { ok: false, code: 'INVALID_ENVELOPE', id: 'i'.repeat(128) })
})

t.test('room names', async (t) => {
  t.equal(MAX_ROOM_LENGTH, 128)
  for (const ok of ['a', 'public:lobby', 'r'.repeat(128), 'émoji 🎉', 'with space', '\u00a0nbsp']) t.ok(roomCheck.Check(ok), JSON.stringify(ok))
  for (const bad of ['', 'r'.repeat(129), 'a\u0000b', 'a\u0001', 'tab\t', 'nl\n', 'del\u007f', 'c1\u0085', 'c1\u009f', 5, null, undefined, ['a'], { a: 1 }]) {
    t.notOk(roomCheck.Check(bad), JSON.stringify(bad) ?? 'undefined')
  }
})

t.test('serialisation', async (t) => {
  t.equal(serialize('t', undefined), '{"type":"t"}')
  t.equal(serialize('t', { a: 1 }, 'r'), '{"type":"t","room":"r","data":{"a":1}}')
  t.equal(serialize('t', null), '{"type":"t","data":null}')
  t.equal(serialize('"quoted"', 'x'), '{"type":"\\"quoted\\"","data":"x"}')
  t.same(JSON.parse(serialize('a\u2028b', 'x\u0000y', 'r')), { type: 'a\u2028b', room: 'r', data: 'x\u0000y' })
  t.equal(serializeAck(1, undefined), '{"type":"ack","id":1}')
  t.equal(serializeAck('x', { ok: true }), '{"type":"ack","id":"x","data":{"ok":true}}')
  t.equal(serializeError('BAD_JSON', 'm'), '{"type":"error","code":"BAD_JSON","message":"m"}')
  t.equal(serializeError('X', 'm', 0, [{ path: '/', message: 'n' }]), '{"type":"error","id":0,"code":"X","message":"m","details":[{"path":"/","message":"n"}]}')
  t.equal(PONG, '{"type":"pong"}')
  t.throws(() => serialize('t', { big: 1n }), TypeError)
})

t.test('schemaErrors lists each failing path and message', async (t) => {
  const check = compileSchema(Type.Object({ a: Type.String(), b: Type.Number({ minimum: 0 }) }))
  const details = schemaErrors(check, { a: 1, b: -1 })
  t.same(details.map((d) => d.path).sort(), ['/a', '/b'])
  for (const d of details) t.type(d.message, 'string')
  t.same(schemaErrors(check, undefined)[0].path, '/', 'the root path is "/"')
  const many = compileSchema(Type.Array(Type.String()))
  t.equal(schemaErrors(many, Array.from({ length: 50 }, () => 1)).length, 20, 'bounded to 20 by default')
  t.equal(schemaErrors(many, Array.from({ length: 50 }, () => 1), 3).length, 3)
})

const echoRoute = {
  path: '/e',
  messages: {
    echo: { schema: Type.Unknown(), handler: (_conn: unknown, data: unknown) => data },
    say: {
      schema: Type.Object({ text: Type.String() }),
      handler (conn: any, data: { text: string }, msg: any) {
        conn.broadcast(msg.room, 'said', data)
        return { ok: true }
      }
    }
  }
}

t.test('BAD_JSON and INVALID_ENVELOPE on the wire, with the id when there was one', async (t) => {
  const app = await setup(t, { routes: [echoRoute] })
  const a = await inject(app, '/e', sign(app, 'alice'))
  const cases: Array<[string, Record<string, unknown>]> = [
    ['not json', { type: 'error', code: 'BAD_JSON', message: 'Message is not valid JSON' }],
    ['{"type":', { type: 'error', code: 'BAD_JSON' }],
    ['"a string"', { type: 'error', code: 'INVALID_ENVELOPE' }],
    ['17', { type: 'error', code: 'INVALID_ENVELOPE' }],
    ['null', { type: 'error', code: 'INVALID_ENVELOPE' }],
    ['[1,2]', { type: 'error', code: 'INVALID_ENVELOPE' }],
    ['{"room":"r","id":3}', { type: 'error', code: 'INVALID_ENVELOPE', id: 3 }],
    ['{"type":"echo","id":"q","extra":true}', { type: 'error', code: 'INVALID_ENVELOPE', id: 'q' }],
    ['{"type":"echo","id":{"x":1}}', { type: 'error', code: 'INVALID_ENVELOPE' }],
    ['{"type":"echo","id":[1]}', { type: 'error', code: 'INVALID_ENVELOPE' }],
    ['{"type":7,"id":4}', { type: 'error', code: 'INVALID_ENVELOPE', id: 4 }]
  ]
  for (const [text] of cases) a.send(text)
  const answers = await settle(a)
  t.equal(answers.length, cases.length, 'one error per bad frame')
  for (let i = 0; i < cases.length; i++) {
    t.match(answers[i], cases[i][1], cases[i][0])
    t.equal('id' in answers[i], 'id' in cases[i][1], `${cases[i][0]}: id only when given`)
    t.type(answers[i].message, 'string')
    t.notOk('stack' in answers[i])
  }
  t.match(answers[2].message, /object/, 'INVALID_ENVELOPE explains the shape')
  a.ws.terminate()
})

t.test('INVALID_ROOM: empty, 129 characters, control characters, not a string', async (t) => {
  const app = await setup(t, { routes: [echoRoute] })
  const a = await inject(app, '/e', sign(app, 'alice'))
  const bad: unknown[] = ['', 'r'.repeat(129), 'a\u0000b', 'x\u007f', 'line\nbreak', 'c1\u0090', 5, true, null, ['r'], { r: 1 }]
  let id = 0
  for (const room of bad) {
    for (const type of ['join', 'leave', 'echo']) a.send({ type, room, id: ++id })
  }
  a.send({ type: 'join', id: 'no-room' })
  a.send({ type: 'leave', id: 'no-room-either' })
  const answers = await settle(a)
  t.equal(answers.length, bad.length * 3 + 2)
  for (const answer of answers) {
    t.match(answer, { type: 'error', code: 'INVALID_ROOM', message: 'Room names are 1 to 128 characters of well-formed text with no control or bidirectional-control characters' })
  }
  t.same(answers.map((m) => m.id), [...Array.from({ length: id }, (_, i) => i + 1), 'no-room', 'no-room-either'], 'each error carries its id')
  t.same(app.realtime.rooms(), [], 'no room was created')

  // the boundary: 128 characters is fine
  t.same(await a.request({ type: 'join', room: 'r'.repeat(128), id: 'max' }), { type: 'ack', id: 'max', data: { room: 'r'.repeat(128) } })
  a.ws.terminate()
})

t.test('bad input leaves other connections untouched', async (t) => {
  const app = await setup(t, { routes: [echoRoute] })
  const attacker = await inject(app, '/e', sign(app, 'mallory'))
  const victim = await inject(app, '/e', sign(app, 'alice'))
  const speaker = await inject(app, '/e', sign(app, 'bob'))
  for (const c of [attacker, victim, speaker]) t.same((await c.request({ type: 'join', room: 'r', id: 'j' })).type, 'ack')

  const deepArray = '['.repeat(10_000) + ']'.repeat(10_000)
  const deepObject = '{"a":'.repeat(10_000) + '1' + '}'.repeat(10_000)
  const garbage: string[] = [
    'not json', '\u0000\u0001\u0002', '{"type":"say","room":"r","data":{"text":"x"}', '[]', '{}',
    '{"type":"say","room":"r","data":{"text":"x"},"__proto__":{"polluted":true}}',
    '{"type":"echo","data":{"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}}},"id":"proto"}',
    '{"type":"__proto__","data":{}}', '{"type":"constructor","data":{}}', '{"type":"toString"}', '{"type":"hasOwnProperty"}',
    '{"type":"join","room":"__proto__","id":"jp"}', '{"type":"leave","room":"constructor"}',
    `{"type":"echo","data":${deepArray}}`, `{"type":"echo","data":${deepObject}}`, `{"type":"say","room":"r","data":${deepObject}}`,
    JSON.stringify({ type: 'x'.repeat(60_000) }), JSON.stringify({ type: 'join', room: 'y'.repeat(60_000) }),
    JSON.stringify({ type: 'say', room: 'r', data: { text: 1 }, id: 'z'.repeat(60_000) }),
    JSON.stringify({ type: 'echo', data: 'h'.repeat(60_000), id: 'huge' })
  ]
  let received = 0
  const counted = new Promise<void>((resolve) => {
    victim.ws.on('message', (raw) => {
      if (JSON.parse(raw.toString()).type === 'said' && ++received === garbage.length) resolve()
    })
  })
  const from = attacker.messages.length
  for (const text of garbage) {
    attacker.send(text)
    speaker.send({ type: 'say', room: 'r', data: { text: 'still here' } })
  }
  await counted
  t.equal(received, garbage.length, 'the victim got every broadcast sent while garbage flowed')
  await settle(attacker)
  const answers = attacker.messages.slice(from)
  t.notOk(answers.some((m) => typeof m.message === 'string' && /at .+:\d+:\d+/.test(m.message)), 'no stack trace')
  t.equal(({} as any).polluted, undefined, 'Object.prototype is not polluted')
  t.equal((Object.prototype as any).polluted, undefined)
  const proto = answers.find((m) => m.id === 'proto')
  t.same(proto, { type: 'ack', id: 'proto', data: { ['__proto__' as string]: { polluted: true }, constructor: { prototype: { polluted: true } } } }, '__proto__ data is plain data')
  t.ok(answers.some((m) => m.id === 'huge' && m.type === 'ack' && m.data.length === 60_000), 'a huge string round-trips')
  t.match(answers.find((m) => m.id === 'jp'), { type: 'ack', data: { room: '__proto__' } }, '"__proto__" is just a room name')
  t.same(app.realtime.rooms().sort(), ['__proto__', 'r'])
  // and the attacker itself is still served
  t.same(await attacker.request({ type: 'echo', data: 1, id: 'after' }), { type: 'ack', id: 'after', data: 1 })
  t.equal(app.realtime.connections().length, 3, 'nobody was disconnected')
  for (const c of [attacker, victim, speaker]) c.ws.terminate()
})

t.test('ping ignores a room field, even a bad one', async (t) => {
  const app = await setup(t, { routes: [echoRoute] })
  const a = await inject(app, '/e', sign(app, 'alice'))
  const from = a.messages.length
  a.send({ type: 'ping', room: 5 })
  await settle(a)
  t.same(a.messages.slice(from), [{ type: 'pong' }, { type: 'pong' }], 'a pong for each ping, no error')
  t.equal(a.ws.readyState, WebSocket.OPEN)
  a.ws.terminate()
})
