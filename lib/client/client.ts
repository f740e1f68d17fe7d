import { Listeners, reportError } from './listeners.js'
import { OfflineQueue } from './offline-queue.js'
import { backoffDelay } from './backoff.js'
import { RealtimeClientError } from './error.js'
import { resolveSettings, resolveUrl, type Settings } from './options.js'
import { openSocket, socketFactory, type ClientSocket, type SocketEnd } from './transport.js'
import type {
  ClientOptions, ClientState, Envelope, EventData, JoinAck, Listener, OutgoingEnvelope,
  PayloadMap, RequestOptions
} from './types.js'

type Timer = ReturnType<typeof setTimeout>

/** Close codes the client acts on. */
const TOKEN_INVALID = 4401
const KICKED = 4403
const ABNORMAL = 1006
const PING = '{"type":"ping"}'

interface Pending {
  resolve: (data: any) => void
  reject: (err: RealtimeClientError) => void
  timer: Timer
}

interface Waiter {
  resolve: (ack: JoinAck) => void
  reject: (err: RealtimeClientError) => void
}

/**
 * A reconnecting client for one fastify-realtime route. Create it with
 * `createClient`; see there for the options and an example.
 */
export class RealtimeClient<Out = PayloadMap, In = PayloadMap, Acks = { [K in keyof Out]: any }> {
  /** The `ws:`/`wss:` url it connects to. */
  readonly url: string
  readonly #settings: Settings
  #state: ClientState = 'connecting'
  #socket: ClientSocket | undefined
  /** failed attempts since the last open */
  #attempt = 0
  /** the token of the current or last attempt */
  #token: string | undefined
  /** the token the server refused (401, 4401); the next attempt needs another */
  #refused: string | undefined
  #reconnectTimer: Timer | undefined
  #pingTimer: ReturnType<typeof setInterval> | undefined
  #pongTimer: Timer | undefined
  #nextId = 1
  readonly #rooms = new Set<string>()
  readonly #joinWaiters = new Map<string, Waiter[]>()
  readonly #queue: OfflineQueue
  readonly #pending = new Map<number, Pending>()
  readonly #listeners = new Listeners()

  constructor (url: string | URL, options: ClientOptions = {}) {
    this.url = resolveUrl(url)
    this.#settings = resolveSettings(options)
    this.#queue = new OfflineQueue(this.#settings.queueMax, this.#settings.queueFlushBatch, this.#settings.queueFlushInterval)
    for (const room of options.rooms ?? []) this.#rooms.add(room)
    this.#connect().catch(reportError)
  }

  /** `connecting`, `open`, `reconnecting` or `closed` (after `close()` or when it gave up). */
  get state (): ClientState {
    return this.#state
  }

  /** The rooms it is in, or will re-join on the next connection. */
  get rooms (): string[] {
    return [...this.#rooms]
  }

  /** Messages waiting in the offline queue. */
  get queued (): number {
    return this.#queue.length
  }

  /**
   * Send a message; while offline it waits in the queue (oldest dropped past `queue.max`).
   * @example client.send('chat.send', { text: 'hi' }, 'lobby')
   */
  send<K extends keyof Out & string> (type: K, data: Out[K], room?: string): void {
    if (this.#closed()) throw new RealtimeClientError('CLOSED', 'the client is closed')
    this.#transmit(envelope(type, data, room))
  }

  /**
   * Send a message with an id and wait for its ack: resolves with the ack's
   * `data`, rejects with the server's error `code`, or `TIMEOUT`.
   * @example const { ok } = await client.request('chat.send', { text: 'hi' }, { room: 'lobby', timeout: 5000 })
   */
  async request<K extends keyof Out & string> (type: K, data: Out[K], options: RequestOptions = {}): Promise<K extends keyof Acks ? Acks[K] : unknown> {
    return await this.#request(envelope(type, data, options.room), options.timeout)
  }

  /**
   * Join a room: now if connected, else on the next connection; re-joined after
   * every reconnect. Resolves with the join ack (`members` with presence).
   * @example const { members } = await client.join('lobby')
   */
  async join (room: string): Promise<JoinAck> {
    if (this.#closed()) throw new RealtimeClientError('CLOSED', 'the client is closed')
    this.#rooms.add(room)
    const joined = new Promise<JoinAck>((resolve, reject) => {
      const waiters = this.#joinWaiters.get(room) ?? []
      waiters.push({ resolve, reject })
      this.#joinWaiters.set(room, waiters)
    })
    if (this.#state === 'open') this.#sendJoin(room)
    return await joined
  }

  /**
   * Leave a room (and stop re-joining it).
   * @example await client.leave('lobby')
   */
  async leave (room: string): Promise<void> {
    this.#rooms.delete(room)
    this.#settleJoin(room, undefined, new RealtimeClientError('CLOSED', `left room ${room} before the join completed`))
    if (this.#state !== 'open') return
    try {
      await this.#request({ type: 'leave', room })
    } catch (err) {
      // not in it (a join the server refused, or lost with the last connection): left all the same
      if ((err as RealtimeClientError).code !== 'NOT_IN_ROOM') throw err
    }
  }

  /**
   * Send a fresh token on the open connection, before the current one expires.
   * Later connections still use `token`/`getToken`.
   */
  async authenticate (token: string): Promise<void> {
    await this.#request({ type: 'auth', data: { token } })
  }

  /**
   * Listen to a message type, or to `open`, `close`, `reconnecting`, `drop`,
   * `error`: `fn(data, message)`. Returns a function that removes the listener.
   * @example client.on('chat.message', (data, msg) => show(msg.room, data.from, data.text))
   */
  on<K extends string> (type: K, fn: Listener<EventData<In, K>>): () => void {
    this.#listeners.add(type, fn)
    return () => this.off(type, fn)
  }

  /** Remove a listener added with `on`. */
  off<K extends string> (type: K, fn: Listener<EventData<In, K>>): void {
    this.#listeners.remove(type, fn)
  }

  /**
   * Close for good: no reconnect, every timer cleared, waiting requests
   * rejected with `CLOSED`. Resolves once the socket is gone.
   * @example await client.close()
   */
  async close (code = 1000, reason = ''): Promise<void> {
    if (!this.#closed()) this.#stop()
    const socket = this.#socket
    if (socket === undefined) return
    socket.close(code, reason)
    await socket.done
  }

  /** A method, not a field read: TypeScript would keep a narrowing of `#state` across the awaits and emits that change it. */
  #closed (): boolean {
    return this.#state === 'closed'
  }

  async #connect (): Promise<void> {
    let token: string | undefined
    try {
      token = await this.#nextToken()
    } catch (err) {
      if (this.#closed()) return
      this.#emitError(new RealtimeClientError('TOKEN_ERROR', 'getToken failed', { cause: err }))
      this.#retry()
      return
    }
    if (this.#closed()) return
    if (this.#refused !== undefined && (token === undefined || token === this.#refused)) {
      this.#giveUp(new RealtimeClientError('UNAUTHORIZED', 'the server refused the token and there is no new one'))
      return
    }
    let factory
    try {
      factory = await socketFactory(this.#settings.WebSocket, this.#settings.wsOptions)
    } catch (err) {
      if (!this.#closed()) this.#giveUp(new RealtimeClientError('CONNECT_FAILED', 'no WebSocket implementation: install `ws` or pass the WebSocket option', { cause: err }))
      return
    }
    if (this.#closed()) return
    this.#token = token
    let socket: ClientSocket
    try {
      socket = openSocket(factory, this.url, token, {
        open: () => { if (this.#socket === socket) this.#opened() },
        message: (text) => { if (this.#socket === socket) this.#received(text) },
        close: (end) => {
          if (this.#socket !== socket) return
          this.#socket = undefined
          this.#ended(end)
        }
      })
    } catch (err) {
      // a constructor that throws (a bad url or token for a subprotocol) fails this attempt like a network error
      this.#ended({ code: ABNORMAL, reason: '', opened: false, cause: err })
      return
    }
    this.#socket = socket
  }

  async #nextToken (): Promise<string | undefined> {
    const { getToken, token } = this.#settings
    if (getToken === undefined) return token
    const fresh = await getToken()
    return typeof fresh === 'string' && fresh !== '' ? fresh : undefined
  }

  #opened (): void {
    this.#attempt = 0
    this.#refused = undefined
    this.#state = 'open'
    this.#startHeartbeat()
    // the server handles one connection's messages in order: joins land before the queued messages
    const backlog = this.#queue.takeAll()
    for (const room of this.#rooms) this.#sendJoin(room)
    this.#queue.restore(backlog)
    this.#queue.flush(this.#write, this.#canWrite)
    this.#emit('open', undefined)
  }

  #ended (end: SocketEnd): void {
    this.#stopHeartbeat()
    this.#queue.pause()
    if (end.opened) {
      this.#emit('close', { code: end.code, reason: end.reason })
    } else if (!this.#closed()) {
      const message = end.status === undefined ? 'connection failed' : `connection refused with HTTP ${end.status}`
      this.#emitError(new RealtimeClientError('CONNECT_FAILED', message, { statusCode: end.status, cause: end.cause }))
    }
    if (this.#closed()) return
    this.#state = 'reconnecting'
    if (end.status === 401 || (end.opened && end.code === TOKEN_INVALID)) {
      this.#refused = this.#token ?? ''
      if (this.#settings.getToken === undefined) {
        this.#giveUp(new RealtimeClientError('UNAUTHORIZED', 'the server refused the token'))
        return
      }
    }
    if (end.opened && end.code === KICKED) {
      this.#giveUp(new RealtimeClientError('KICKED', `closed by the server: ${end.reason}`))
      return
    }
    this.#retry()
  }

  #retry (): void {
    const backoff = this.#settings.reconnect
    if (backoff === false || this.#attempt >= backoff.maxRetries) {
      this.#giveUp(new RealtimeClientError('RECONNECT_FAILED', backoff === false ? 'reconnect is off' : `gave up after ${this.#attempt} retries`))
      return
    }
    this.#attempt++
    const delay = backoffDelay(this.#attempt, backoff)
    this.#state = 'reconnecting'
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      this.#connect().catch(reportError)
    }, delay)
    this.#emit('reconnecting', { attempt: this.#attempt, delay })
  }

  #giveUp (err: RealtimeClientError): void {
    this.#stop()
    this.#emitError(err)
  }

  /** Final state: no timer left, nothing waits forever. */
  #stop (): void {
    this.#state = 'closed'
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = undefined
    this.#stopHeartbeat()
    for (const [id, pending] of this.#pending) {
      clearTimeout(pending.timer)
      this.#pending.delete(id)
      pending.reject(new RealtimeClientError('CLOSED', 'the client closed before the ack'))
    }
    for (const room of [...this.#joinWaiters.keys()]) {
      this.#settleJoin(room, undefined, new RealtimeClientError('CLOSED', 'the client closed before the join completed'))
    }
    this.#queue.clear()
  }

  #startHeartbeat (): void {
    const heartbeat = this.#settings.heartbeat
    if (heartbeat === false) return
    this.#pingTimer = setInterval(() => {
      if (this.#pongTimer !== undefined || this.#socket === undefined) return
      this.#socket.send(PING)
      this.#pongTimer = setTimeout(this.#deadLink, heartbeat.timeout)
    }, heartbeat.interval)
  }

  #stopHeartbeat (): void {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer)
    if (this.#pongTimer !== undefined) clearTimeout(this.#pongTimer)
    this.#pingTimer = undefined
    this.#pongTimer = undefined
  }

  readonly #deadLink = (): void => {
    this.#pongTimer = undefined
    const socket = this.#socket
    if (socket === undefined) return
    // forget the socket first: its own close event, whenever it comes, is stale
    this.#socket = undefined
    socket.abort()
    this.#ended({ code: ABNORMAL, reason: 'heartbeat timeout', opened: true })
  }

  #received (text: string): void {
    let msg: Envelope & { code?: string, message?: string, details?: unknown[] }
    try {
      msg = JSON.parse(text)
    } catch {
      return
    }
    if (msg === null || typeof msg !== 'object' || typeof msg.type !== 'string') return
    switch (msg.type) {
      case 'pong':
        if (this.#pongTimer !== undefined) clearTimeout(this.#pongTimer)
        this.#pongTimer = undefined
        return
      case 'ack':
        this.#settle(msg.id, msg.data)
        return
      case 'error': {
        const err = new RealtimeClientError(String(msg.code), String(msg.message ?? msg.code), { details: msg.details })
        if (!this.#settle(msg.id, undefined, err)) this.#emitError(err, msg)
        return
      }
      default:
        this.#emit(msg.type, msg.data, msg)
    }
  }

  #settle (id: unknown, data: unknown, err?: RealtimeClientError): boolean {
    if (typeof id !== 'number') return false
    const pending = this.#pending.get(id)
    if (pending === undefined) return false
    this.#pending.delete(id)
    clearTimeout(pending.timer)
    if (err === undefined) pending.resolve(data)
    else pending.reject(err)
    return true
  }

  async #request (msg: OutgoingEnvelope, timeout = this.#settings.requestTimeout): Promise<any> {
    if (this.#closed()) throw new RealtimeClientError('CLOSED', 'the client is closed')
    const id = this.#nextId++
    return await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new RealtimeClientError('TIMEOUT', `no ack for "${msg.type}" within ${timeout} ms`))
      }, timeout)
      this.#pending.set(id, { resolve, reject, timer })
      this.#transmit({ ...msg, id })
    })
  }

  #sendJoin (room: string): void {
    this.#request({ type: 'join', room }).then(
      (ack: JoinAck) => { this.#settleJoin(room, ack) },
      (err: RealtimeClientError) => {
        // a join lost with its connection is retried on the next one; a refusal is final
        if (err.code === 'TIMEOUT' || err.code === 'CLOSED') {
          this.#settleJoin(room, undefined, err)
          return
        }
        this.#rooms.delete(room)
        const waiting = this.#joinWaiters.has(room)
        this.#settleJoin(room, undefined, err)
        if (!waiting) this.#emitError(err)
      }
    )
  }

  #settleJoin (room: string, ack: JoinAck | undefined, err?: RealtimeClientError): void {
    const waiters = this.#joinWaiters.get(room)
    if (waiters === undefined) return
    this.#joinWaiters.delete(room)
    for (const waiter of waiters) {
      if (err === undefined) waiter.resolve(ack as JoinAck)
      else waiter.reject(err)
    }
  }

  /** Write now if open, else queue (bounded: the oldest goes, with a `drop` event). */
  #transmit (msg: OutgoingEnvelope): void {
    // behind a queue still being flushed, new messages wait their turn
    if (this.#canWrite() && this.#queue.length === 0) this.#write(msg)
    else this.#queue.push(msg, this.#drop)
  }

  readonly #canWrite = (): boolean => this.#state === 'open' && this.#socket !== undefined

  readonly #write = (msg: OutgoingEnvelope): void => {
    (this.#socket as ClientSocket).send(JSON.stringify(msg))
  }

  readonly #drop = (msg: OutgoingEnvelope): void => {
    this.#emit('drop', msg)
  }

  #emitError (err: RealtimeClientError, msg?: Envelope): void {
    this.#emit('error', err, msg)
  }

  #emit (type: string, data: unknown, msg: Envelope = { type, data }): void {
    this.#listeners.emit(type, data, msg)
  }
}

function envelope (type: string, data: unknown, room: string | undefined): OutgoingEnvelope {
  const msg: OutgoingEnvelope = { type }
  if (room !== undefined) msg.room = room
  if (data !== undefined) msg.data = data
  return msg
}
