import { Listeners, reportError } from './listeners.js'
import { Sender, type RequestKind } from './sender.js'
import { now } from './send-window.js'
import { Heartbeat } from './heartbeat.js'
import { ClientRooms } from './rooms.js'
import { parseFrame } from './frames.js'
import { backoffDelay, restartDelay } from './backoff.js'
import { RealtimeClientError } from './error.js'
import { resolveSettings, resolveUrl, type Settings } from './options.js'
import { openSocket, socketFactory, type ClientSocket, type SocketEnd } from './transport.js'
import { CLOSE_ABNORMAL, CLOSE_KICKED, CLOSE_SERVICE_RESTART, CLOSE_TOKEN_INVALID, NOT_IN_ROOM } from './wire.js'
import type {
  ClientOptions, ClientState, Envelope, EventData, JoinAck, JoinOptions, Listener,
  OutgoingEnvelope, PayloadMap, RequestOptions
} from './types.js'

type Timer = ReturnType<typeof setTimeout>

/** Answers not counted towards `maxConnectFailures`: 429 and 503 are the server's "later", 401 has its own rule. */
const UNCOUNTED_STATUS = new Set([401, 429, 503])

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
  /** backoff step: retries since a connection last stayed up `reconnect.resetAfter` ms */
  #attempt = 0
  /** attempts in a row that never opened */
  #failures = 0
  #openedAt = 0
  /** the token of the current or last attempt */
  #token: string | undefined
  /** the token the server refused (401, 4401); the next attempt needs another */
  #refused: string | undefined
  #reconnectTimer: Timer | undefined
  readonly #heartbeat: Heartbeat | undefined
  readonly #sender: Sender
  readonly #rooms: ClientRooms
  readonly #listeners = new Listeners()

  constructor (url: string | URL, options: ClientOptions = {}) {
    this.url = resolveUrl(url)
    this.#settings = resolveSettings(options)
    const { heartbeat } = this.#settings
    this.#sender = new Sender(this.#settings, {
      canWrite: () => this.#state === 'open' && this.#socket !== undefined,
      write: (text) => { this.#socket?.send(text) },
      drop: (info) => { this.#emit('drop', info.message, { type: 'drop', data: info.message, reason: info.reason }) },
      error: (err, msg) => { this.#emitError(err, msg) }
    })
    if (heartbeat !== false) this.#heartbeat = new Heartbeat(heartbeat.interval, heartbeat.timeout, () => { this.#sender.ping() }, this.#deadLink)
    this.#rooms = new ClientRooms(options.rooms ?? [], this.#sender, {
      emit: (type, data, msg) => { this.#emit(type, data, msg) },
      error: (err) => { this.#emitError(err) }
    })
    this.#connect().catch(reportError)
  }

  /** `connecting`, `open`, `reconnecting` or `closed` (after `close()` or when it gave up). */
  get state (): ClientState {
    return this.#state
  }

  /** The rooms it is in, or will re-join on the next connection. */
  get rooms (): string[] {
    return this.#rooms.list()
  }

  /** Frames waiting to be sent: offline, behind the re-joins, or for the pace. */
  get queued (): number {
    return this.#sender.queued
  }

  /**
   * Send a message: now when open and within the pace, else queued (bounded:
   * the oldest is dropped past `queue.max`, with a `drop` event).
   * @example client.send('chat.send', { text: 'hi' }, 'lobby')
   */
  send<K extends keyof Out & string> (type: K, data: Out[K], room?: string): void {
    if (this.#closed()) throw new RealtimeClientError('CLOSED', 'the client is closed')
    this.#sender.send(envelope(type, data, room))
  }

  /**
   * Send a message with an id and wait for its ack: resolves with the ack's
   * `data`, rejects with the server's error `code`, `TIMEOUT` (a request still
   * queued then is never sent), `QUEUE_FULL` or `CLOSED`.
   * @example const { ok } = await client.request('chat.send', { text: 'hi' }, { room: 'lobby', timeout: 5000 })
   */
  async request<K extends keyof Out & string> (type: K, data: Out[K], options: RequestOptions = {}): Promise<K extends keyof Acks ? Acks[K] : unknown> {
    return await this.#request(envelope(type, data, options.room), { timeout: options.timeout, droppable: true })
  }

  /**
   * Join a room: now if connected, else on the next connection; re-joined after
   * every reconnect, asking for what it missed when the room keeps history.
   * Resolves with the join ack's data (`members` with presence, `offset` and
   * `epoch` with history).
   * @example const { members } = await client.join('lobby')
   * @example await client.join('news', { history: 20 }) // the last 20 arrive first, as ordinary messages
   */
  async join (room: string, options: JoinOptions = {}): Promise<JoinAck> {
    if (this.#closed()) throw new RealtimeClientError('CLOSED', 'the client is closed')
    const { history } = options
    if (history !== undefined && (!Number.isSafeInteger(history) || history < 1)) throw new TypeError('fastify-realtime client: join option "history" must be a positive integer')
    return await this.#rooms.join(room, history, this.#state === 'open')
  }

  /**
   * Leave a room (and stop re-joining it).
   * @example await client.leave('lobby')
   */
  async leave (room: string): Promise<void> {
    this.#rooms.leave(room)
    if (this.#state !== 'open') return
    try {
      await this.#request({ type: 'leave', room })
    } catch (err) {
      // not in it (a join the server refused, or lost with the last connection): left all the same
      if ((err as RealtimeClientError).code !== NOT_IN_ROOM) throw err
    }
  }

  /**
   * Send a fresh token on the open connection, before the current one expires.
   * Later connections still use `token`/`getToken`.
   */
  async authenticate (token: string): Promise<void> {
    await this.#request({ type: 'auth', data: { token } }, { priority: true })
  }

  /**
   * Listen to a message type, or to `open`, `close`, `reconnecting`, `drop`,
   * `resync`, `kicked`, `error`: `fn(data, message)`. Returns a function that
   * removes the listener.
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
   * rejected with `CLOSED`, queued messages reported as `drop` (`closed`).
   * Resolves once the socket is gone.
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
      this.#ended({ code: CLOSE_ABNORMAL, reason: '', opened: false, cause: err })
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
    this.#openedAt = now()
    this.#failures = 0
    this.#refused = undefined
    this.#state = 'open'
    this.#heartbeat?.start()
    // re-joins first, paced like the rest; queued messages wait for their answers, so they run with their rooms joined
    this.#rooms.opened()
    this.#emit('open', undefined)
  }

  #ended (end: SocketEnd): void {
    this.#heartbeat?.stop()
    this.#rooms.lost(this.#sender.lost())
    if (end.opened) {
      this.#emit('close', { code: end.code, reason: end.reason })
      const { reconnect } = this.#settings
      if (reconnect !== false && now() - this.#openedAt >= reconnect.resetAfter) this.#attempt = 0
    } else if (!this.#closed()) {
      const message = end.status === undefined ? 'connection failed' : `connection refused with HTTP ${end.status}`
      const counted = end.status === undefined || !UNCOUNTED_STATUS.has(end.status)
      if (counted) this.#failures++
      const { reconnect } = this.#settings
      if (counted && reconnect !== false && this.#failures >= reconnect.maxConnectFailures) {
        this.#giveUp(new RealtimeClientError('CONNECT_FAILED', `${message}; gave up after ${this.#failures} failed attempts in a row`, { statusCode: end.status, failures: this.#failures, cause: end.cause }))
        return
      }
      this.#emitError(new RealtimeClientError('CONNECT_FAILED', message, { statusCode: end.status, cause: end.cause }))
    }
    if (this.#closed()) return
    this.#state = 'reconnecting'
    if (end.status === 401 || (end.opened && end.code === CLOSE_TOKEN_INVALID)) {
      this.#refused = this.#token ?? ''
      if (this.#settings.getToken === undefined) {
        this.#giveUp(new RealtimeClientError('UNAUTHORIZED', 'the server refused the token'))
        return
      }
    }
    if (end.opened && end.code === CLOSE_KICKED) {
      this.#giveUp(new RealtimeClientError('KICKED', `closed by the server: ${end.reason}`))
      return
    }
    const { reconnect } = this.#settings
    const hinted = end.opened && end.code === CLOSE_SERVICE_RESTART && reconnect !== false ? restartDelay(end.reason, reconnect.random) : undefined
    this.#retry(hinted)
  }

  /** Schedule the next attempt: after `delay` when the server hinted one (1012), else after the backoff. */
  #retry (delay?: number): void {
    const backoff = this.#settings.reconnect
    if (backoff === false || this.#attempt >= backoff.maxRetries) {
      this.#giveUp(new RealtimeClientError('RECONNECT_FAILED', backoff === false ? 'reconnect is off' : `gave up after ${this.#attempt} retries`))
      return
    }
    this.#attempt++
    const wait = delay ?? backoffDelay(this.#attempt, backoff)
    this.#state = 'reconnecting'
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined
      this.#connect().catch(reportError)
    }, wait)
    this.#emit('reconnecting', { attempt: this.#attempt, delay: wait })
  }

  #giveUp (err: RealtimeClientError): void {
    this.#stop()
    this.#emitError(err)
  }

  /** Final state: no timer left, nothing waits forever, every queued message reported. */
  #stop (): void {
    this.#state = 'closed'
    if (this.#reconnectTimer !== undefined) clearTimeout(this.#reconnectTimer)
    this.#reconnectTimer = undefined
    this.#heartbeat?.stop()
    this.#rooms.stop()
    this.#sender.stop()
  }

  readonly #deadLink = (): void => {
    const socket = this.#socket
    if (socket === undefined) return
    // forget the socket first: its own close event, whenever it comes, is stale
    this.#socket = undefined
    socket.abort()
    this.#ended({ code: CLOSE_ABNORMAL, reason: 'heartbeat timeout', opened: true })
  }

  #received (text: string | null): void {
    const frame = parseFrame(text)
    switch (frame.kind) {
      case 'bad':
        this.#emitError(new RealtimeClientError('BAD_FRAME', `ignored a server frame: ${frame.reason}`))
        return
      case 'pong':
        this.#heartbeat?.pong()
        return
      case 'ack':
        this.#sender.acked(frame.id, frame.data)
        return
      case 'error':
        this.#sender.refused(frame.id, frame.error, frame.envelope)
        return
      case 'resync':
        this.#rooms.resync(frame.room, frame.epoch, frame.offset, frame.envelope)
        return
      case 'kicked':
        this.#rooms.kicked(frame.room, frame.code, frame.envelope)
        return
      case 'message': {
        const { room, offset, envelope } = frame
        if (offset !== undefined && room !== undefined && !this.#rooms.accept(room, offset)) return
        this.#emit(frame.type, envelope.data, envelope)
      }
    }
  }

  async #request (msg: OutgoingEnvelope, kind?: RequestKind): Promise<any> {
    if (this.#closed()) throw new RealtimeClientError('CLOSED', 'the client is closed')
    return await this.#sender.request(msg, kind)
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
