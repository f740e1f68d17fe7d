// Protocol-level abuse over raw TCP with hand-built frames: every violation gets
// its SPEC close code (1002, 1003, 1007, 1009), fragmented and interleaved frames
// are reassembled, random bytes never crash the process, and a well-behaved member
// of the same room keeps chatting without losing a message.
import t from 'tap'
import fc from 'fast-check'
import { Type } from '@sinclair/typebox'
import { chatSend } from './chat-message.js'
import WebSocket from 'ws'
import { build, listen, sign } from '../helpers.js'
import { OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT, RawSocket, closeFrame, frame, rawConnect } from './wire.js'
import { heapAfterGc, prototypeSnapshot } from './memory.js'

const MAX_PAYLOAD = 4096
const PING_MESSAGE = Buffer.from('{"type":"ping","data":"€ü😀 – multi-byte, split anywhere"}')

type Piece =
  | { t: 'message', cuts: number[], pingAt: number | undefined }
  | { t: 'ping', payload: Buffer }
  | { t: 'pong' }
  | { t: 'violation', kind: keyof typeof violations }
  | { t: 'binary', fragmented: boolean }
  | { t: 'badUtf8', fragmented: boolean }
  | { t: 'oversize', fragmented: boolean }
  | { t: 'close', code: number }

/** Frames that break RFC 6455: each must close the connection with 1002. */
const violations = {
  unmasked: () => frame({ opcode: OP_TEXT, payload: '{"type":"ping"}', mask: false }),
  rsv1: () => frame({ opcode: OP_TEXT, payload: '{"type":"ping"}', rsv: 4 }),
  rsv3: () => frame({ opcode: OP_TEXT, payload: '{"type":"ping"}', rsv: 1 }),
  opcode3: () => frame({ opcode: 3, payload: 'x' }),
  opcodeB: () => frame({ opcode: 0xb, payload: 'x' }),
  continuationFirst: () => frame({ opcode: OP_CONT, payload: 'x' }),
  textInsideFragments: () => Buffer.concat([frame({ opcode: OP_TEXT, payload: '{"type"', fin: false }), frame({ opcode: OP_TEXT, payload: ':"ping"}' })]),
  fragmentedPing: () => frame({ opcode: OP_PING, payload: 'x', fin: false }),
  longPing: () => frame({ opcode: OP_PING, payload: Buffer.alloc(126, 1) }),
  closeCode999: () => closeFrame(999),
  closeCode1005: () => closeFrame(1005),
  closeOneByte: () => frame({ opcode: OP_CLOSE, payload: Buffer.from([3]) })
}

const piece: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 12, arbitrary: fc.record({ t: fc.constant('message' as const), cuts: fc.uniqueArray(fc.integer({ min: 1, max: PING_MESSAGE.length - 1 }), { maxLength: 4 }), pingAt: fc.option(fc.nat(4), { nil: undefined }) }) },
  { weight: 3, arbitrary: fc.uint8Array({ maxLength: 125 }).map((b) => ({ t: 'ping' as const, payload: Buffer.from(b) })) },
  { weight: 2, arbitrary: fc.constant({ t: 'pong' as const }) },
  { weight: 2, arbitrary: fc.constantFrom(...Object.keys(violations) as Array<keyof typeof violations>).map((kind) => ({ t: 'violation' as const, kind })) },
  { weight: 1, arbitrary: fc.boolean().map((fragmented) => ({ t: 'binary' as const, fragmented })) },
  { weight: 1, arbitrary: fc.boolean().map((fragmented) => ({ t: 'badUtf8' as const, fragmented })) },
  { weight: 1, arbitrary: fc.boolean().map((fragmented) => ({ t: 'oversize' as const, fragmented })) },
  { weight: 1, arbitrary: fc.constantFrom(1000, 1001, 3000, 4999).map((code) => ({ t: 'close' as const, code })) }
)

function bytesOf (p: Piece): Buffer {
  switch (p.t) {
    case 'message': {
      const cuts = [...p.cuts].sort((a, b) => a - b)
      const parts: Buffer[] = []
      let start = 0
      for (const cut of [...cuts, PING_MESSAGE.length]) {
        parts.push(PING_MESSAGE.subarray(start, cut))
        start = cut
      }
      const frames = parts.map((part, i) => frame({ opcode: i === 0 ? OP_TEXT : OP_CONT, payload: part, fin: i === parts.length - 1 }))
      // a control frame may arrive between the fragments of a message
      if (p.pingAt !== undefined && parts.length > 1) frames.splice(1 + (p.pingAt % (parts.length - 1)), 0, frame({ opcode: OP_PING, payload: 'mid' }))
      return Buffer.concat(frames)
    }
    case 'ping':
      return frame({ opcode: OP_PING, payload: p.payload })
    case 'pong':
      return frame({ opcode: OP_PONG, payload: 'unsolicited' })
    case 'violation':
      return violations[p.kind]()
    case 'binary':
      return p.fragmented
        ? Buffer.concat([frame({ opcode: OP_BINARY, payload: '{"ty', fin: false }), frame({ opcode: OP_CONT, payload: 'pe":"ping"}' })])
        : frame({ opcode: OP_BINARY, payload: '{"type":"ping"}' })
    case 'badUtf8': {
      const bad = Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d])
      return p.fragmented
        ? Buffer.concat([frame({ opcode: OP_TEXT, payload: bad.subarray(0, 3), fin: false }), frame({ opcode: OP_CONT, payload: bad.subarray(3) })])
        : frame({ opcode: OP_TEXT, payload: bad })
    }
    case 'oversize':
      return p.fragmented
        ? Buffer.concat([frame({ opcode: OP_TEXT, payload: Buffer.alloc(3000, 0x20), fin: false }), frame({ opcode: OP_CONT, payload: Buffer.alloc(3000, 0x20) })])
        : frame({ opcode: OP_TEXT, length: BigInt(MAX_PAYLOAD + 1) })
    case 'close':
      return closeFrame(p.code)
  }
}

interface FrameExpectation {
  pongTexts: number
  pongPayloads: string[]
  close: number | undefined
}

/** What RFC 6455 and SPEC section 5 say the server answers, up to the first close. */
function expectFrames (pieces: Piece[]): FrameExpectation {
  const out: FrameExpectation = { pongTexts: 0, pongPayloads: [], close: undefined }
  for (const p of pieces) {
    switch (p.t) {
      case 'message':
        if (p.pingAt !== undefined && p.cuts.length > 0) out.pongPayloads.push('mid')
        out.pongTexts++
        break
      case 'ping':
        out.pongPayloads.push(p.payload.toString('latin1'))
        break
      case 'pong':
        break
      case 'violation':
        return { ...out, close: 1002 }
      case 'binary':
        return { ...out, close: 1003 }
      case 'badUtf8':
        return { ...out, close: 1007 }
      case 'oversize':
        return { ...out, close: 1009 }
      case 'close':
        // the server answers a client's close with the same code
        return { ...out, close: p.code }
    }
  }
  return out
}

t.test('raw frames: violations, fragments, garbage', async (t) => {
  const app = await build(t, {
    maxPayload: MAX_PAYLOAD,
    rateLimit: { max: 1_000_000, windowMs: 1000 },
    heartbeat: false,
    routes: [{
      path: '/raw',
      messages: {
        'chat.send': chatSend(),
        probe: { schema: Type.Object({}), handler: () => undefined }
      }
    }]
  })
  const url = await listen(app)
  const port = Number(new URL(url).port)
  const aliceToken = sign(app, 'alice')
  const prototypesBefore = prototypeSnapshot()

  // B: a well-behaved member of 'room' that chats the whole time
  const bTexts: string[] = []
  const b = new WebSocket(url + '/raw', { headers: { authorization: `Bearer ${sign(app, 'bob')}` } })
  b.on('message', (raw) => bTexts.push(raw.toString()))
  await new Promise((resolve, reject) => { b.once('open', resolve); b.once('error', reject) })
  b.send('{"type":"join","room":"room","id":"join"}')
  let bSent = 0
  const bTimer = setInterval(() => {
    b.send(JSON.stringify({ type: 'chat.send', room: 'room', id: bSent, data: { seq: bSent } }))
    bSent++
  }, 3)
  t.teardown(() => clearInterval(bTimer))

  /** A raw client joined to 'room'; its `texts` then hold only what follows. */
  async function member (): Promise<RawSocket> {
    const raw = await rawConnect(port, '/raw', { headers: { authorization: `Bearer ${aliceToken}` } })
    if (raw.answer?.status !== 101) throw new Error(`handshake answered ${raw.answer?.status}`)
    raw.sendText('{"type":"join","room":"room","id":"join"}')
    if (!await raw.until(() => raw.texts.includes('{"type":"ack","id":"join","data":{"room":"room"}}'))) throw new Error('no join ack')
    raw.texts.length = 0
    raw.frames.length = 0
    return raw
  }
  const answers = (raw: RawSocket): string[] => raw.texts.filter((s) => !s.includes('"chat.message"'))

  const heapBefore = heapAfterGc()

  await t.test('each protocol violation closes with its code', async (t) => {
    const cases: Array<[string, Buffer, number]> = [
      ...Object.entries(violations).map(([name, build]): [string, Buffer, number] => [name, build(), 1002]),
      ['binary frame', frame({ opcode: OP_BINARY, payload: '{"type":"ping"}' }), 1003],
      ['invalid UTF-8', frame({ opcode: OP_TEXT, payload: Buffer.from([0xff, 0xfe]) }), 1007],
      ['overlong UTF-8 encoding', frame({ opcode: OP_TEXT, payload: Buffer.from([0xc0, 0xaf]) }), 1007],
      ['UTF-16 surrogate in UTF-8', frame({ opcode: OP_TEXT, payload: Buffer.from([0xed, 0xa0, 0x80]) }), 1007],
      ['close reason not UTF-8', frame({ opcode: OP_CLOSE, payload: Buffer.from([0x03, 0xe8, 0xff]) }), 1007],
      ['header announcing maxPayload + 1', frame({ opcode: OP_TEXT, length: BigInt(MAX_PAYLOAD + 1) }), 1009],
      ['64-bit length of 2^63', frame({ opcode: OP_TEXT, length: 2n ** 63n }), 1009],
      ['fragments adding up past maxPayload', bytesOf({ t: 'oversize', fragmented: true }), 1009]
    ]
    for (const [name, bytes, code] of cases) {
      const raw = await member()
      raw.write(bytes)
      t.equal(await raw.closed(), code, `${name}: close ${code}`)
      t.same(answers(raw), [], `${name}: no message before the close`)
      raw.destroy()
    }
  })

  await t.test('a message of exactly maxPayload bytes is accepted', async (t) => {
    const raw = await member()
    const prefix = '{"type":"probe","id":"max","data":{"pad":"'
    const suffix = '"}}'
    const exact = prefix + 'x'.repeat(MAX_PAYLOAD - prefix.length - suffix.length) + suffix
    t.equal(Buffer.byteLength(exact), MAX_PAYLOAD)
    raw.sendText(exact)
    await raw.until(() => answers(raw).length > 0)
    t.same(answers(raw), ['{"type":"ack","id":"max"}'], 'answered, not closed')
    raw.destroy()
  })

  await t.test('fuzzed frame sequences', async (t) => {
    let sequences = 0
    const closes = new Map<number, number>()
    await fc.assert(fc.asyncProperty(fc.array(piece, { minLength: 1, maxLength: 8 }), async (pieces) => {
      const expected = expectFrames(pieces)
      const raw = await member()
      try {
        raw.write(Buffer.concat(pieces.map(bytesOf)))
        if (expected.close === undefined) {
          raw.sendText('{"type":"probe","id":"end","data":{}}')
          await raw.until(() => answers(raw).includes('{"type":"ack","id":"end"}'))
          const got = answers(raw)
          if (got.join('\n') !== [...Array(expected.pongTexts).fill('{"type":"pong"}'), '{"type":"ack","id":"end"}'].join('\n')) {
            throw new Error(`expected ${expected.pongTexts} pongs then the probe ack, got ${JSON.stringify(got)}`)
          }
        } else {
          const code = await raw.closed()
          if (code !== expected.close) throw new Error(`expected close ${expected.close}, got ${code}`)
          closes.set(code, (closes.get(code) ?? 0) + 1)
          const got = answers(raw)
          if (got.length !== expected.pongTexts || got.some((s) => s !== '{"type":"pong"}')) {
            throw new Error(`expected ${expected.pongTexts} pongs before the close, got ${JSON.stringify(got)}`)
          }
        }
        const pongs = raw.frames.filter((f) => f.opcode === OP_PONG).map((f) => f.payload.toString('latin1'))
        if (JSON.stringify(pongs) !== JSON.stringify(expected.pongPayloads)) {
          throw new Error(`pong frames ${JSON.stringify(pongs)}, expected ${JSON.stringify(expected.pongPayloads)}`)
        }
        sequences++
      } finally {
        raw.destroy()
      }
    }), { numRuns: 250, interruptAfterTimeLimit: 30_000, markInterruptAsFailure: true })
    t.equal(sequences, 250, '250 frame sequences answered as RFC 6455 and SPEC say')
    t.comment(`closes by code: ${JSON.stringify(Object.fromEntries(closes))}`)
    for (const code of [1000, 1002, 1003, 1007, 1009]) t.ok((closes.get(code) ?? 0) > 0, `exercised close ${code}`)
  })

  await t.test('random bytes after the handshake', async (t) => {
    const seen = new Set<number | undefined>()
    await fc.assert(fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 64 }), async (bytes) => {
      const raw = await member()
      raw.write(Buffer.from(bytes))
      // random bytes may announce a long frame: end our side so the server is not left waiting
      await raw.closed(100)
      raw.socket.end()
      await raw.closed(500)
      seen.add(raw.closeCode)
      raw.destroy()
      if (raw.closeCode !== undefined && ![1000, 1002, 1003, 1005, 1007, 1009].includes(raw.closeCode)) {
        throw new Error(`unexpected close code ${raw.closeCode}`)
      }
    }), { numRuns: 150, interruptAfterTimeLimit: 20_000, markInterruptAsFailure: true })
    t.comment(`close codes seen: ${JSON.stringify([...seen])}`)
    t.ok(seen.has(1002), 'garbage is mostly a protocol error (1002)')
  })

  clearInterval(bTimer)
  b.send('{"type":"probe","id":"last","data":{}}')
  const deadline = Date.now() + 5000
  while (!bTexts.includes('{"type":"ack","id":"last"}') && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10))
  const acks: number[] = []
  const own: number[] = []
  const junk: string[] = []
  for (const s of bTexts) {
    const m = JSON.parse(s)
    if (m.type === 'ack' && typeof m.id === 'number' && m.data?.ok === true) acks.push(m.id)
    else if (m.type === 'chat.message' && m.data?.from === 'bob') own.push(m.data.seq)
    else if (!(m.type === 'ack' && (m.id === 'join' || m.id === 'last'))) junk.push(s)
  }
  const all = Array.from({ length: bSent }, (_, i) => i)
  t.same(junk, [], 'the well-behaved member saw no junk')
  t.same(acks, all, `it got every ack, in order (${bSent})`)
  t.same(own, all, 'it got every broadcast, in order')

  const settled = Date.now() + 3000
  while (app.realtime.stats().connections > 1 && Date.now() < settled) await new Promise((resolve) => setTimeout(resolve, 10))
  t.equal(app.realtime.stats().connections, 1, 'every raw connection is gone from the server')
  t.same(app.realtime.rooms(), ['room'], 'only the live member\'s room is left')
  t.same(prototypeSnapshot(), prototypesBefore, 'no built-in prototype gained a property')
  const grown = heapAfterGc() - heapBefore
  t.ok(grown < 32 * 1024 * 1024, `heap grew ${(grown / 1048576).toFixed(1)} MiB`)
  b.close()
})
