import t from 'tap'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Writable as WritableStream } from 'node:stream'
import * as wsModule from 'ws'
import WebSocket, { WebSocketServer } from 'ws'
import { kPending, kTurnBytes } from '../lib/symbols.js'
import { FrameWriter, textFrame, type Writable } from '../lib/ws/writer.js'
import { sleep } from './helpers.js'
import { until } from './helpers/wait.js'

const { Receiver } = wsModule as unknown as { Receiver: new (opts: Record<string, unknown>) => NodeJS.WritableStream & NodeJS.EventEmitter }

/** Parse server frames back with ws's own Receiver (client side: frames are unmasked). */
function parseFrames (bytes: Buffer): string[] {
  const receiver = new Receiver({ isServer: false, maxPayload: 0 })
  const out: string[] = []
  receiver.on('message', (data: Buffer, isBinary: boolean) => {
    if (isBinary) throw new Error('binary frame')
    out.push(data.toString())
  })
  receiver.on('error', (err: Error) => { throw err })
  receiver.write(bytes)
  return out
}

t.test('textFrame builds valid final text frames at every length boundary', async (t) => {
  const cases: Array<[number, number, number]> = [
    // payload bytes, header bytes, second byte
    [0, 2, 0],
    [1, 2, 1],
    [125, 2, 125],
    [126, 4, 126],
    [127, 4, 126],
    [65_535, 4, 126],
    [65_536, 10, 127],
    [70_000, 10, 127]
  ]
  for (const [length, header, second] of cases) {
    const payload = 'x'.repeat(length)
    const frame = textFrame(payload)
    t.equal(frame.length, header + length, `${length}: total size`)
    t.equal(frame[0], 0x81, `${length}: FIN + text opcode`)
    t.equal(frame[1], second, `${length}: unmasked, length marker`)
    if (header === 4) t.equal(frame.readUInt16BE(2), length, `${length}: 16-bit length`)
    if (header === 10) t.equal(frame.readBigUInt64BE(2), BigInt(length), `${length}: 64-bit length`)
    t.same(parseFrames(frame), [payload], `${length}: ws's Receiver reads it back`)
  }
})

t.test('textFrame counts UTF-8 bytes, not UTF-16 units', async (t) => {
  const samples = [
    'é'.repeat(63), // 126 bytes in 63 characters: crosses to the 16-bit form
    '€'.repeat(42), // 126 bytes
    '😀'.repeat(31) + 'a', // 125 bytes: 2-byte header still
    'ab€😀ü'.repeat(7000), // over 65535 bytes
    '{"type":"chat","data":{"text":"日本語"}}'
  ]
  for (const payload of samples) {
    const frame = textFrame(payload)
    const bytes = Buffer.byteLength(payload)
    const header = bytes < 126 ? 2 : bytes < 65_536 ? 4 : 10
    t.equal(frame.length, header + bytes, `${bytes} bytes: size`)
    t.same(frame.subarray(header), Buffer.from(payload), 'payload is the UTF-8 encoding')
    t.same(parseFrames(frame), [payload], 'round-trips')
  }
  t.same(parseFrames(Buffer.concat([textFrame('a'), textFrame(''), textFrame('€'.repeat(50))])), ['a', '', '€'.repeat(50)], 'back to back frames parse one by one')
})

/** A ws server and a client connected to it; returns the server-side socket. */
async function pair (t: { after: (fn: () => unknown) => void }, clientOptions: WebSocket.ClientOptions = {}, serverOptions: WebSocket.ServerOptions = {}): Promise<{ server: WebSocket, client: WebSocket, received: string[] }> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', ...serverOptions })
  await once(wss, 'listening')
  const connection = once(wss, 'connection')
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`, clientOptions)
  const received: string[] = []
  client.on('message', (data) => received.push(data.toString()))
  const [server] = await connection as [WebSocket]
  await once(client, 'open')
  t.after(async () => {
    client.terminate()
    for (const ws of wss.clients) ws.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  return { server, client, received }
}

function target (ws: WebSocket): Writable {
  return { ws, [kPending]: undefined, [kTurnBytes]: 0 }
}

/** Count the socket's writes: one entry per write or writev, with its chunk count. */
function countWrites (ws: WebSocket): number[] {
  const socket = (ws as any)._socket
  const writes: number[] = []
  const writev = socket._writev.bind(socket)
  const write = socket._write.bind(socket)
  socket._writev = (chunks: unknown[], cb: () => void) => { writes.push(chunks.length); writev(chunks, cb) }
  socket._write = (chunk: unknown, enc: string, cb: () => void) => { writes.push(1); write(chunk, enc, cb) }
  return writes
}

t.test('frames for one socket in one turn leave in one write, in order', async (t) => {
  const { server, client, received } = await pair(t)
  const writes = countWrites(server)
  let chunks = 0
  ;(client as any)._socket.on('data', () => chunks++)

  const writer = new FrameWriter()
  const to = target(server)
  const payloads = ['one', 'two', 'x'.repeat(300), 'four']
  for (const p of payloads) t.equal(writer.write(to, textFrame(p), p), 0, 'a turn\'s own bytes are no backlog')
  t.equal((to[kPending] as Buffer[]).length, payloads.length, 'held for the rest of the turn')
  t.same(writes, [], 'nothing written before the turn ends')
  const frames = payloads.reduce((n, p) => n + textFrame(p).length, 0)
  t.equal(server.bufferedAmount, frames, 'bufferedAmount counts the held bytes')
  t.equal(to[kTurnBytes], frames)
  await until(() => received.length === payloads.length)
  t.same(writes, [1], 'one write with every frame')
  t.same(received, payloads, 'in order')
  t.equal(chunks, 1, 'the client read them as one chunk')
  t.equal(to[kPending], undefined)
  t.equal(to[kTurnBytes], 0, 'the next turn starts afresh')
  t.equal(server.bufferedAmount, 0, 'all sent')

  // a later turn holds again; a lone frame is written as it is, not copied
  const frame = textFrame('five')
  writer.write(to, frame, 'five')
  t.equal(to[kPending], frame, 'the frame itself')
  await until(() => received.length === 5)
  t.equal(received[4], 'five')
  t.same(writes, [1, 1])
})

t.test('release() writes what a socket holds at once, so what ws writes next comes after it', async (t) => {
  const { server, client, received } = await pair(t)
  const writer = new FrameWriter()
  const to = target(server)
  writer.write(to, textFrame('a'), 'a')
  writer.write(to, textFrame('b'), 'b')
  writer.release(to)
  t.equal(to[kPending], undefined)
  server.send('c')
  writer.write(to, textFrame('d'), 'd')
  await until(() => received.length === 4)
  t.same(received, ['a', 'b', 'c', 'd'])
  writer.release(to) // nothing held: harmless

  writer.write(to, textFrame('last'), 'last')
  writer.release(to)
  server.close(4000, 'bye')
  const [code] = await once(client, 'close')
  t.equal(code, 4000)
  t.same(received.slice(4), ['last'], 'the held frame came before the close frame')
})

t.test('frames still held when the socket stops being open are dropped, not written after a close frame', async (t) => {
  const { server, client, received } = await pair(t)
  const writer = new FrameWriter()
  const to = target(server)
  const writes = countWrites(server)
  writer.write(to, textFrame('held'), 'held')
  server.close(4000, 'closing') // ws writes its close frame directly
  const [code] = await once(client, 'close')
  t.equal(code, 4000)
  t.same(received, [], 'nothing after the close frame')
  t.equal(server.bufferedAmount, 0, 'the dropped bytes left bufferedAmount')
  t.equal(writes.length, 1, 'one write: the close frame alone')
  t.equal(to[kPending], undefined, 'the turn let go of it')
})

t.test('flush() sends at once and leaves no immediate behind', async (t) => {
  const { server, received } = await pair(t)
  const writer = new FrameWriter()
  const to = target(server)
  writer.flush() // nothing [kPending]: harmless
  writer.write(to, textFrame('now'), 'now')
  const before = process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length
  writer.flush()
  const after = process.getActiveResourcesInfo().filter((r) => r === 'Immediate').length
  t.equal(after, before - 1, 'the pending immediate was cleared')
  t.equal(to[kPending], undefined)
  await until(() => received.length === 1)
  t.same(received, ['now'])
})

t.test('a closed or closing socket is not written to', async (t) => {
  const { server, client } = await pair(t)
  const writer = new FrameWriter()
  const to = target(server)
  server.close(1000)
  t.equal(writer.write(to, textFrame('late'), 'late'), -1, 'CLOSING')
  await once(client, 'close')
  t.equal(to[kPending], undefined)
  t.equal(to[kTurnBytes], 0, 'nothing was counted')
})

t.test('with permessage-deflate the frames go through ws.send, still in order', async (t) => {
  const { server, received } = await pair(t, { perMessageDeflate: true }, { perMessageDeflate: { threshold: 0 } })
  t.ok((server as any)._extensions['permessage-deflate'], 'deflate was negotiated')
  const writer = new FrameWriter()
  const to = target(server)
  const sends: string[] = []
  const send = server.send.bind(server)
  server.send = ((data: any, ...rest: any[]) => { sends.push(String(data)); return (send as any)(data, ...rest) }) as any
  const payloads = Array.from({ length: 20 }, (_, i) => `message ${i} ${'z'.repeat(i * 50)}`)
  for (const p of payloads) {
    const backlog = writer.write(to, textFrame(p), p)
    t.ok(backlog >= 0, 'a backlog, never -1')
  }
  t.same(sends, payloads, 'every frame went through ws.send')
  t.equal(to[kPending], undefined, 'nothing was held')
  await until(() => received.length === payloads.length)
  t.same(received, payloads)
})

/** A stand-in for ws's internals: a socket whose peer may stop reading. */
function fakeWs (): { ws: WebSocket, chunks: Buffer[], sent: string[], stall: () => void, sender: { _queue: unknown[], _state: number, _bufferedBytes: number }, setSocket: (s: unknown) => void } {
  const chunks: Buffer[] = []
  const sent: string[] = []
  let stalled = false
  const socket = new WritableStream({
    highWaterMark: 16,
    write (chunk, _enc, cb) {
      chunks.push(chunk)
      if (!stalled) cb() // a stalled peer never takes the bytes
    }
  })
  const sender = { _queue: [] as unknown[], _state: 0, _bufferedBytes: 0 }
  const fake = {
    readyState: 1,
    _socket: socket as unknown,
    _sender: sender,
    _extensions: {} as Record<string, unknown>,
    get bufferedAmount () {
      const s = fake._socket as WritableStream | null
      return (s === null ? 0 : s.writableLength) + sender._bufferedBytes
    },
    send (payload: string) { sent.push(payload) }
  }
  return { ws: fake as unknown as WebSocket, chunks, sent, stall: () => { stalled = true }, sender, setSocket: (s) => { fake._socket = s } }
}

t.test('the backlog is what earlier turns left unsent', async (t) => {
  const fake = fakeWs()
  const writer = new FrameWriter()
  const to = target(fake.ws)
  const frame = textFrame('y'.repeat(1000))
  let backlog = 0
  for (let i = 0; i < 50; i++) backlog = writer.write(to, frame, '')
  t.equal(backlog, 0, 'a big burst in one turn is no backlog')
  await sleep(1)
  t.equal(fake.chunks.length, 1, 'written in one go')
  t.equal(fake.chunks[0].length, 50 * frame.length, 'and the peer took it all')
  t.equal(writer.write(to, frame, ''), 0, 'nothing left from the last turn')
  fake.stall()
  await sleep(1)
  t.equal(writer.write(to, frame, ''), frame.length, 'the peer did not take the last frame')
  await sleep(1)
  t.equal(writer.write(to, frame, ''), 2 * frame.length, 'it grows turn by turn')
  await sleep(1)
  t.equal(fake.ws.bufferedAmount, 3 * frame.length)
})

t.test('falls back to ws.send while ws has frames of its own queued or no socket', async (t) => {
  for (const [name, set] of [
    ['compressing', (f: ReturnType<typeof fakeWs>) => { f.sender._state = 1 }],
    ['reading a blob', (f: ReturnType<typeof fakeWs>) => { f.sender._state = 2 }],
    ['queued frames', (f: ReturnType<typeof fakeWs>) => { f.sender._queue.push([]) }],
    ['no socket', (f: ReturnType<typeof fakeWs>) => { f.setSocket(null) }],
    ['deflate negotiated', (f: ReturnType<typeof fakeWs>) => { (f.ws as any)._extensions['permessage-deflate'] = {} }]
  ] as const) {
    const fake = fakeWs()
    set(fake)
    const writer = new FrameWriter()
    const to = target(fake.ws)
    writer.write(to, textFrame('p1'), 'p1')
    writer.write(to, textFrame('p2'), 'p2')
    t.same(fake.sent, ['p1', 'p2'], `${name}: through ws.send`)
    t.equal(to[kPending], undefined, `${name}: nothing held`)
    t.equal(fake.chunks.length, 0, `${name}: nothing written around ws`)
    writer.flush()
    t.equal(to[kTurnBytes], 0, `${name}: the turn was reset`)
  }
})

t.test('the backlog from ws.send counts what ws holds from earlier turns', async (t) => {
  const fake = fakeWs()
  fake.sender._state = 1 // compressing: ws counts queued bytes in bufferedAmount
  const writer = new FrameWriter()
  const to = target(fake.ws)
  const frame = textFrame('q'.repeat(500))
  fake.sender._bufferedBytes += 500
  t.equal(writer.write(to, frame, 'q'), 0, 'this turn\'s own bytes are excused')
  writer.flush()
  fake.sender._bufferedBytes += 500
  // ws counts queued payload bytes, the writer counts frame bytes (4 more of header)
  t.equal(writer.write(to, frame, 'q'), 1000 - frame.length, 'the previous turn\'s are not')
})

t.test('a frame that falls back to ws.send goes out after the frames held before it', async (t) => {
  const fake = fakeWs()
  const order: string[] = []
  const socket = (fake.ws as any)._socket
  const write = socket.write.bind(socket)
  socket.write = (chunk: Buffer) => { order.push(...parseFrames(chunk)); return write(chunk) }
  const send = fake.ws.send.bind(fake.ws)
  ;(fake.ws as any).send = (payload: string) => { order.push(payload); send(payload) }
  const writer = new FrameWriter()
  const to = target(fake.ws)
  writer.write(to, textFrame('held 1'), 'held 1')
  writer.write(to, textFrame('held 2'), 'held 2')
  t.same(order, [], 'held')
  fake.sender._state = 2 // ws is busy with a frame of its own: the next one goes through it
  writer.write(to, textFrame('through ws'), 'through ws')
  t.same(order, ['held 1', 'held 2', 'through ws'], 'the held frames were written first')
  t.equal(to[kPending], undefined)
  t.equal(fake.sender._bufferedBytes, 0, 'and their bytes left ws\'s counter')
  writer.flush()
})
