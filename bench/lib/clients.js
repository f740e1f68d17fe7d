// The two load-generator clients. Both expose open(), join(room), publish(room,
// data), close() and call `onDelivery(tsMicros)` for every relayed message.
import WebSocket from 'ws'
import { io } from 'socket.io-client'

const TS_KEY = Buffer.from('"ts":')
const LETTER_A = 0x61 // {"type":"ack"...
const LETTER_E = 0x65 // {"type":"error"...
const LETTER_M = 0x6d // {"type":"message"...
const TYPE_AT = 9 // index of the type's first letter in {"type":"...

function noop () {}

/** The integer after `"ts":` in a serialised message, read without JSON.parse. */
export function readTs (buf) {
  let i = buf.indexOf(TS_KEY) + TS_KEY.length
  let value = 0
  for (let c = buf[i]; c >= 0x30 && c <= 0x39; c = buf[++i]) value = value * 10 + (c - 0x30)
  return value
}

/** A `ws` client speaking the JSON envelopes of fastify-realtime (and of the raw ws servers). */
export class EnvelopeClient {
  onDelivery = noop
  errors = 0
  sent = 0
  #pending = new Map()
  #nextId = 0
  #ws = null

  constructor (url, token) {
    this.url = url
    this.token = token
  }

  open () {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(this.url, { headers: { authorization: `Bearer ${this.token}` }, perMessageDeflate: false })
      this.#ws = ws
      ws.once('open', () => {
        ws.off('error', reject)
        ws.on('error', () => { this.errors++ })
        resolve()
      })
      ws.once('error', reject)
      ws.on('message', this.#onMessage)
    })
  }

  join (room) {
    const id = ++this.#nextId
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject })
      this.#ws.send(`{"type":"join","room":${JSON.stringify(room)},"id":${id}}`)
    })
  }

  publish (room, data) {
    this.#ws.send(`{"type":"publish","room":${JSON.stringify(room)},"data":${JSON.stringify(data)}}`)
  }

  close () {
    this.#ws?.terminate()
  }

  /** Close with a closing handshake; resolves once the socket is closed. */
  leave () {
    const ws = this.#ws
    if (ws === null || ws.readyState === WebSocket.CLOSED) return Promise.resolve()
    return new Promise((resolve) => {
      ws.once('close', resolve)
      ws.close(1000)
    })
  }

  #onMessage = (buf) => {
    const letter = buf[TYPE_AT]
    if (letter === LETTER_M) {
      this.onDelivery(readTs(buf))
      return
    }
    if (letter !== LETTER_A && letter !== LETTER_E) return
    const msg = JSON.parse(buf.toString())
    if (letter === LETTER_E) this.errors++
    const waiter = this.#pending.get(msg.id)
    if (waiter === undefined) return
    this.#pending.delete(msg.id)
    if (letter === LETTER_A) waiter.resolve(msg.data)
    else waiter.reject(new Error(`${msg.code}: ${msg.message}`))
  }
}

/** socket.io-client on the websocket transport, one engine connection each. */
export class SocketIoClient {
  onDelivery = noop
  errors = 0
  sent = 0
  #socket = null

  constructor (url, path) {
    this.url = url
    this.path = path
  }

  open () {
    return new Promise((resolve, reject) => {
      const socket = io(this.url, { path: this.path, transports: ['websocket'], forceNew: true, reconnection: false, timeout: 30_000 })
      this.#socket = socket
      socket.once('connect', () => {
        socket.off('connect_error', reject)
        resolve()
      })
      socket.once('connect_error', reject)
      socket.on('message', (room, data) => this.onDelivery(data.ts))
    })
  }

  join (room) {
    return new Promise((resolve) => this.#socket.emit('join', room, resolve))
  }

  publish (room, data) {
    this.#socket.emit('publish', room, data)
  }

  close () {
    this.#socket?.disconnect()
  }

  leave () {
    this.#socket?.disconnect()
    return Promise.resolve()
  }
}
