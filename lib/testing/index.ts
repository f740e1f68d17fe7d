// `fastify-realtime/testing`: a connection to a route without a port (on
// `app.injectWS`), for tests that read as a conversation. Works with any test
// runner (tap, node:test, ...): it only returns promises.
import type { FastifyInstance } from 'fastify'
import type { WebSocket } from 'ws'
import type { AcksOf, Envelope, IncomingOf, JoinAck, OutgoingOf, PayloadMap } from '../client/types.js'

export type { Envelope }

/** Options of `connect`. */
export interface ConnectOptions {
  /** Claims to sign with the app's `app.jwt` (e.g. `{ sub: 'alice' }`) when no `token` is given. */
  user?: Record<string, unknown>
  /** A token to send as `Authorization: Bearer <token>`. */
  token?: string
  /** More headers of the upgrade request (`origin`, ...). */
  headers?: Record<string, string>
  /** [2000] ms `join`, `leave`, `request` and `next` wait by default. */
  timeout?: number
}

/** The data of a join's ack. */
export interface JoinAckData extends JoinAck {
  /** with `presence: true`: how many members there are */
  total?: number
  /** in a room with history: its latest offset */
  offset?: number
  /** in a room with history: its epoch */
  epoch?: string
  /** after a join with `since`: whether every message after it was sent */
  recovered?: boolean
}

/** What a join may ask of a room with history. */
export type JoinData = { since: { offset: number, epoch: string } } | { history: number }

/** A server message as the connection received it. */
export interface ServerMessage<T = unknown> extends Envelope<T> {
  offset?: number
  code?: string
  message?: string
  details?: unknown[]
}

/** An error of the test kit: `code` is the server's error code, or `TIMEOUT`, or `CLOSED`. */
export class TestConnectionError extends Error {
  readonly code: string
  readonly details?: unknown[]

  constructor (code: string, message: string, details?: unknown[]) {
    super(message)
    this.name = 'TestConnectionError'
    this.code = code
    if (details !== undefined) this.details = details
  }
}

interface Waiter {
  type: string | undefined
  resolve: (message: ServerMessage<any>) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

interface Answer {
  resolve: (data: any) => void
  reject: (err: Error) => void
  timer: NodeJS.Timeout
}

/** The data of a server message of `K`: the route's `emits`, else unknown. */
type DataOf<In, K extends string> = K extends keyof In ? In[K] : unknown

/**
 * One connection opened by `connect`. Every server message is kept from the
 * moment the socket opens: `next(type)` returns the oldest one not yet read
 * (of that type, when given), so no message is missed between two awaits.
 * Acks and errors that answer this connection's own `join`, `leave` and
 * `request` go to those calls instead.
 */
export class TestConnection<Out = PayloadMap, In = PayloadMap, Acks = { [K in keyof Out]: any }> {
  /** The client side of the socket, for what the kit does not cover (raw frames). */
  readonly ws: WebSocket
  /** `{ code, reason }` once the socket closes. */
  readonly closed: Promise<{ code: number, reason: string }>
  readonly #unread: Array<ServerMessage<any>> = []
  readonly #waiters: Waiter[] = []
  readonly #answers = new Map<string, Answer>()
  readonly #timeout: number
  #nextId = 1
  #ended: { code: number, reason: string } | undefined

  /** @internal use `connect` */
  constructor (ws: WebSocket, timeout: number) {
    this.ws = ws
    this.#timeout = timeout
    ws.on('message', (raw) => this.#received(raw.toString()))
    // a socket made by injectWS does not answer ping frames by itself
    ws.on('ping', (payload) => { ws.pong(payload) })
    this.closed = new Promise((resolve) => {
      ws.once('close', (code, reason) => {
        this.#ended = { code, reason: String(reason) }
        this.#endAll()
        resolve(this.#ended)
      })
    })
  }

  /** Messages received and not yet read by `next`. */
  get unread (): ReadonlyArray<ServerMessage<unknown>> {
    return this.#unread
  }

  /**
   * Send a message, without an id (no ack).
   * @example conn.send('chat.send', { text: 'hi' }, 'lobby')
   */
  send<K extends keyof Out & string> (type: K, data: Out[K], room?: string): void {
    this.#write({ type, room, data })
  }

  /**
   * Send a message with an id: resolves with its ack's `data`, rejects with
   * the server's error code (`INVALID_MESSAGE`, ...) or `TIMEOUT`.
   * @example const ack = await conn.request('chat.send', { text: 'hi' }, { room: 'lobby' })
   */
  async request<K extends keyof Out & string> (type: K, data: Out[K], options: { room?: string, timeout?: number } = {}): Promise<K extends keyof Acks ? Acks[K] : unknown> {
    return await this.#ask({ type, room: options.room, data }, options.timeout)
  }

  /**
   * Join a room: resolves with the ack's `data` (`{ room }`, with `members`
   * and `total` when the route has presence).
   * @example const { members } = await conn.join('lobby')
   */
  async join (room: string, data?: JoinData): Promise<JoinAckData> {
    return await this.#ask({ type: 'join', room, data })
  }

  /**
   * Leave a room.
   * @example await conn.leave('lobby')
   */
  async leave (room: string): Promise<void> {
    await this.#ask({ type: 'leave', room })
  }

  /**
   * The oldest unread server message (of `type`, when given), waiting up to
   * `timeout` ms for one; the others stay unread for later calls.
   * @example const msg = await conn.next('chat.message'); msg.data.text
   */
  async next<K extends string> (type?: K, options: { timeout?: number } = {}): Promise<ServerMessage<DataOf<In, K>>> {
    const i = this.#unread.findIndex((m) => type === undefined || m.type === type)
    if (i >= 0) return this.#unread.splice(i, 1)[0]
    if (this.#ended !== undefined) throw this.#closedError(type ?? 'a message')
    const ms = options.timeout ?? this.#timeout
    return await new Promise((resolve, reject) => {
      const waiter: Waiter = {
        type,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.splice(this.#waiters.indexOf(waiter), 1)
          reject(new TestConnectionError('TIMEOUT', `no ${type ?? 'message'} within ${ms} ms`))
        }, ms)
      }
      this.#waiters.push(waiter)
    })
  }

  /**
   * Close the socket (1000 by default) and wait until it is closed; a peer that
   * does not answer within 1 s is cut off.
   * @example await conn.close()
   */
  async close (code = 1000, reason = ''): Promise<{ code: number, reason: string }> {
    if (this.#ended === undefined) {
      if (this.ws.readyState === this.ws.OPEN) this.ws.close(code, reason)
      const timer = setTimeout(() => { this.ws.terminate() }, 1000)
      timer.unref()
      await this.closed
      clearTimeout(timer)
    }
    return await this.closed
  }

  #write (envelope: Record<string, unknown>): void {
    if (this.#ended !== undefined || this.ws.readyState !== this.ws.OPEN) throw this.#closedError(String(envelope.type))
    this.ws.send(JSON.stringify(envelope))
  }

  async #ask (envelope: Record<string, unknown>, timeout = this.#timeout): Promise<any> {
    // ids of their own, so frames a test writes itself (numeric ids) never take their answers
    const id = `kit:${this.#nextId++}`
    this.#write({ ...envelope, id })
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#answers.delete(id)
        reject(new TestConnectionError('TIMEOUT', `no answer to ${String(envelope.type)} within ${timeout} ms`))
      }, timeout)
      this.#answers.set(id, { resolve, reject, timer })
    })
  }

  #received (text: string): void {
    let message: ServerMessage<any>
    try {
      message = JSON.parse(text)
    } catch {
      message = { type: 'unparsable', data: text }
    }
    const answer = typeof message.id === 'string' && (message.type === 'ack' || message.type === 'error') ? this.#answers.get(message.id) : undefined
    if (answer !== undefined) {
      this.#answers.delete(message.id as string)
      clearTimeout(answer.timer)
      if (message.type === 'ack') answer.resolve(message.data)
      else answer.reject(new TestConnectionError(message.code ?? 'ERROR', message.message ?? 'error', message.details))
      return
    }
    const i = this.#waiters.findIndex((w) => w.type === undefined || w.type === message.type)
    if (i < 0) {
      this.#unread.push(message)
      return
    }
    const [waiter] = this.#waiters.splice(i, 1)
    clearTimeout(waiter.timer)
    waiter.resolve(message)
  }

  #closedError (what: string): TestConnectionError {
    const end = this.#ended === undefined ? '' : ` (${this.#ended.code}${this.#ended.reason === '' ? '' : ' ' + this.#ended.reason})`
    return new TestConnectionError('CLOSED', `the connection closed${end}; no ${what}`)
  }

  /** The socket closed: whatever still waits fails now rather than at its timeout. */
  #endAll (): void {
    for (const waiter of this.#waiters.splice(0)) {
      clearTimeout(waiter.timer)
      waiter.reject(this.#closedError(waiter.type ?? 'message'))
    }
    for (const answer of this.#answers.values()) {
      clearTimeout(answer.timer)
      answer.reject(this.#closedError('answer'))
    }
    this.#answers.clear()
  }
}

interface SigningApp {
  jwt?: { sign: (payload: Record<string, unknown>) => string }
}

/**
 * Open a connection to `path` through `app.injectWS` (no port): with `token`
 * as a bearer token, or `user` signed with the app's own `app.jwt`, or none.
 * Type it from the route definition to check what it sends and receives.
 * Rejects, like injectWS, with `Unexpected server response: <status>` when the
 * upgrade is refused.
 * @example
 * const alice = await connect<typeof chatRoute>(app, '/chat', { user: { sub: 'alice' } })
 * await alice.join('lobby')
 * const ack = await alice.request('chat.send', { text: 'hi' }, { room: 'lobby' })
 * const msg = await alice.next('chat.message')
 * await alice.close()
 */
export async function connect<R = PayloadMap> (app: FastifyInstance, path: string, options: ConnectOptions = {}): Promise<TestConnection<OutgoingOf<R>, IncomingOf<R>, AcksOf<R>>> {
  let token = options.token
  if (token === undefined && options.user !== undefined) {
    const jwt = (app as unknown as SigningApp).jwt
    if (typeof jwt?.sign !== 'function') throw new TypeError('connect(): `user` is signed with app.jwt; register @fastify/jwt, or pass a `token`')
    token = jwt.sign(options.user)
  }
  const headers = { ...options.headers, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) }
  let connection: TestConnection<OutgoingOf<R>, IncomingOf<R>, AcksOf<R>> | undefined
  await app.injectWS(path, { headers }, {
    // listening from the first frame: what the server sends on connect is kept too
    onInit: (ws) => { connection = new TestConnection(ws, options.timeout ?? 2000) }
  })
  return connection as TestConnection<OutgoingOf<R>, IncomingOf<R>, AcksOf<R>>
}
