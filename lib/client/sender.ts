import { Outbox, type Entry } from './outbox.js'
import { SendWindow } from './send-window.js'
import { RealtimeClientError } from './error.js'
import { PING, RATE_LIMITED } from './wire.js'
import type { DropInfo, DropReason, Envelope, OutgoingEnvelope } from './types.js'

type Timer = ReturnType<typeof setTimeout>

/** A frame sent with an id, until its ack or error: a request, or a queued message the sender tagged to follow it. */
interface Pending {
  entry: Entry
  /** absent for a tagged message: nobody waits for its ack */
  caller?: {
    resolve: (data: any) => void
    reject: (err: RealtimeClientError) => void
    timer: Timer
  }
  /** a join lost with its connection is not failed: the next connection re-joins */
  join: boolean
}

/** How a request travels. */
export interface RequestKind {
  timeout?: number
  /** an app message the queue bound and timeouts may drop */
  droppable?: boolean
  /** past the queue (an auth must not wait behind a backlog) */
  priority?: boolean
  /** a re-join after a reconnect: ahead of everything queued */
  rejoin?: boolean
  join?: boolean
}

export interface SenderSettings {
  queueMax: number
  rateLimit: { max: number, windowMs: number, retries: number }
  requestTimeout: number
}

export interface SenderHooks {
  /** true while a connection is open */
  canWrite: () => boolean
  /** one text frame on the open socket */
  write: (text: string) => void
  drop: (info: DropInfo) => void
  /** a server error no request waits for */
  error: (err: RealtimeClientError, msg: Envelope) => void
}

/**
 * Everything the client writes: the outbox (bounded, paced, re-joins first),
 * ids and acks, and the retries of what the server refused with RATE_LIMITED.
 * Whatever it accepted and gives up on is reported as a `drop`.
 */
export class Sender {
  readonly #outbox: Outbox
  readonly #pending = new Map<number, Pending>()
  readonly #settings: SenderSettings
  readonly #hooks: SenderHooks
  #nextId = 1

  constructor (settings: SenderSettings, hooks: SenderHooks) {
    this.#settings = settings
    this.#hooks = hooks
    const { max, windowMs } = settings.rateLimit
    this.#outbox = new Outbox(settings.queueMax, new SendWindow(max, windowMs), {
      canWrite: hooks.canWrite,
      write: this.#writeQueued,
      drop: this.#dropped
    })
  }

  /** Frames waiting to be sent. */
  get queued (): number {
    return this.#outbox.length
  }

  /** An app message without an ack. */
  send (msg: OutgoingEnvelope): void {
    this.#transmit(this.#outbox.entry(msg, true))
  }

  /** A frame with an id: resolves with its ack's data, rejects with the server's error, `TIMEOUT`, `QUEUE_FULL` or `CLOSED`. */
  async request (msg: OutgoingEnvelope, kind: RequestKind = {}): Promise<any> {
    return await new Promise((resolve, reject) => { this.call(msg, kind, resolve, reject) })
  }

  /**
   * `request` with callbacks, called as the ack or error is read: a frame
   * that follows in the same read sees what the ack changed (a join's offset).
   */
  call (msg: OutgoingEnvelope, kind: RequestKind, resolve: (data: any) => void, reject: (err: RealtimeClientError) => void): void {
    const id = this.#nextId++
    const entry = this.#outbox.entry({ ...msg, id }, kind.droppable === true, kind.rejoin === true)
    const timeout = kind.timeout ?? this.#settings.requestTimeout
    const timer = setTimeout(() => { this.#timedOut(id, timeout) }, timeout)
    this.#pending.set(id, { entry, caller: { resolve, reject, timer }, join: kind.join === true })
    this.#transmit(entry, kind.priority)
  }

  /** The app-level ping: past the queue, but counted in the pace. */
  ping (): void {
    this.#outbox.note()
    this.#hooks.write(PING)
  }

  /** A connection opened: re-joins go first; with `rejoins`, queued messages wait for `rejoined()`. */
  opened (rejoins: boolean): void {
    if (rejoins) this.#outbox.closeGate()
    this.#outbox.pump()
  }

  /** Every re-join was answered: queued messages may go. */
  rejoined (): void {
    this.#outbox.openGate()
  }

  /**
   * The connection ended. A join in flight is answered by the next
   * connection's re-join (a queued one is taken out: the re-join replaces it);
   * a tagged message is lost with the link (it may or may not have been
   * handled). Requests keep waiting for their timeout. Returns the joins taken
   * out before they were sent.
   */
  lost (): OutgoingEnvelope[] {
    this.#outbox.pause()
    const unsent: OutgoingEnvelope[] = []
    for (const [id, pending] of this.#pending) {
      if (!pending.join && pending.caller !== undefined) continue
      this.#pending.delete(id)
      if (pending.caller !== undefined) clearTimeout(pending.caller.timer)
      if (pending.join && this.#outbox.remove(pending.entry)) unsent.push(pending.entry.msg)
    }
    return unsent
  }

  /** For good: every request rejected with `CLOSED`, every queued message reported as a `closed` drop. */
  stop (): void {
    const unsent = this.#outbox.clear()
    for (const [id, { caller }] of this.#pending) {
      this.#pending.delete(id)
      if (caller === undefined) continue
      clearTimeout(caller.timer)
      caller.reject(new RealtimeClientError('CLOSED', 'the client closed before the ack'))
    }
    for (const entry of unsent) this.#hooks.drop({ reason: 'closed', message: entry.msg })
  }

  /** An ack from the server. */
  acked (id: unknown, data: unknown): void {
    const pending = this.#take(id)
    if (pending?.caller === undefined) return
    clearTimeout(pending.caller.timer)
    pending.caller.resolve(data)
  }

  /** An error envelope: RATE_LIMITED is sent again while retries are left; the rest fails its request, or is an error event. */
  refused (id: unknown, err: RealtimeClientError, msg: Envelope): void {
    const pending = typeof id === 'number' ? this.#pending.get(id) : undefined
    if (pending === undefined) {
      this.#hooks.error(err, msg)
      return
    }
    const { entry, caller } = pending
    const { retries, windowMs } = this.#settings.rateLimit
    if (err.code === RATE_LIMITED && entry.retries < retries && this.#hooks.canWrite()) {
      entry.retries++
      // the server's window has to turn over first: a whole window, then twice that, ...
      this.#outbox.retry(entry, windowMs * 2 ** (entry.retries - 1))
      return
    }
    this.#pending.delete(id as number)
    if (err.code === RATE_LIMITED && entry.droppable) this.#hooks.drop({ reason: 'rate_limited', message: entry.msg })
    if (caller !== undefined) {
      clearTimeout(caller.timer)
      caller.reject(err)
    } else if (err.code !== RATE_LIMITED) {
      // a tagged message fails as it would have untagged: an error event
      this.#hooks.error(err, msg)
    }
  }

  #take (id: unknown): Pending | undefined {
    if (typeof id !== 'number') return undefined
    const pending = this.#pending.get(id)
    this.#pending.delete(id)
    return pending
  }

  #timedOut (id: number, timeout: number): void {
    const pending = this.#take(id)
    if (pending?.caller === undefined) return
    const { entry } = pending
    // still queued: it is never sent (a join or leave still goes, to keep the rooms straight)
    if (entry.droppable && this.#outbox.remove(entry)) this.#hooks.drop({ reason: 'timeout', message: entry.msg })
    pending.caller.reject(new RealtimeClientError('TIMEOUT', `no ack for "${entry.msg.type}" within ${timeout} ms`))
  }

  /** Write now if open and nothing is ahead within the pace, else queue. */
  #transmit (entry: Entry, priority = false): void {
    if (this.#hooks.canWrite() && (priority || this.#outbox.ready())) {
      this.#outbox.note()
      this.#hooks.write(JSON.stringify(entry.wire))
    } else {
      this.#outbox.push(entry)
    }
  }

  /** A queued app message goes out with an id, so a RATE_LIMITED refusal can be told apart and retried. */
  readonly #writeQueued = (entry: Entry): void => {
    if (entry.droppable) {
      let id = entry.wire.id
      if (id === undefined) {
        id = this.#nextId++
        entry.wire = { ...entry.msg, id }
      }
      // a retried message the last connection lost track of is followed again
      if (!this.#pending.has(id)) this.#pending.set(id, { entry, join: false })
    }
    this.#hooks.write(JSON.stringify(entry.wire))
  }

  readonly #dropped = (entry: Entry, reason: DropReason): void => {
    const pending = this.#pending.get(entry.wire.id ?? -1)
    if (pending?.entry === entry) {
      this.#pending.delete(entry.wire.id as number)
      if (pending.caller !== undefined) {
        clearTimeout(pending.caller.timer)
        pending.caller.reject(new RealtimeClientError('QUEUE_FULL', `"${entry.msg.type}" was dropped from the full queue`))
      }
    }
    this.#hooks.drop({ reason, message: entry.msg })
  }
}
