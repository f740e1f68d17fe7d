type Timer = ReturnType<typeof setTimeout>

/** The part of a browser `document` the heartbeat reads. */
interface VisibilityDocument {
  visibilityState?: unknown
  addEventListener?: (type: string, fn: () => void) => void
  removeEventListener?: (type: string, fn: () => void) => void
}

/** The page's document when it tells visibility (browsers); undefined in Node. */
function visibilityDocument (): VisibilityDocument | undefined {
  const doc = (globalThis as { document?: VisibilityDocument }).document
  if (typeof doc !== 'object' || doc === null || typeof doc.addEventListener !== 'function') return undefined
  return doc
}

/**
 * The app-level heartbeat of one open connection: a `ping` every `interval`,
 * and a link that gives no `pong` within `timeout` is dead. Browsers throttle
 * a hidden tab's timers (to once a minute and worse), so a deadline measured
 * there says nothing about the link: while the page is hidden no deadline is
 * kept, and when it shows again a ping goes out and a fresh deadline starts.
 */
export class Heartbeat {
  readonly #interval: number
  readonly #timeout: number
  readonly #sendPing: () => void
  readonly #dead: () => void
  #pingTimer: ReturnType<typeof setInterval> | undefined
  #deadline: Timer | undefined
  #awaiting = false
  #doc: VisibilityDocument | undefined

  constructor (interval: number, timeout: number, sendPing: () => void, dead: () => void) {
    this.#interval = interval
    this.#timeout = timeout
    this.#sendPing = sendPing
    this.#dead = dead
  }

  start (): void {
    this.stop()
    this.#pingTimer = setInterval(this.#tick, this.#interval)
    this.#doc = visibilityDocument()
    this.#doc?.addEventListener?.('visibilitychange', this.#visibilityChanged)
  }

  stop (): void {
    if (this.#pingTimer !== undefined) clearInterval(this.#pingTimer)
    this.#pingTimer = undefined
    this.#clearDeadline()
    this.#awaiting = false
    this.#doc?.removeEventListener?.('visibilitychange', this.#visibilityChanged)
    this.#doc = undefined
  }

  /** A pong arrived: the link is alive. */
  pong (): void {
    this.#awaiting = false
    this.#clearDeadline()
  }

  #hidden (): boolean {
    return this.#doc?.visibilityState === 'hidden'
  }

  readonly #tick = (): void => {
    if (this.#awaiting) return
    this.#ping()
  }

  #ping (): void {
    this.#awaiting = true
    this.#sendPing()
    // pings still go out while hidden (they keep proxies from idling the link out); only the deadline waits
    if (!this.#hidden()) this.#armDeadline()
  }

  readonly #visibilityChanged = (): void => {
    if (this.#pingTimer === undefined) return
    if (this.#hidden()) {
      this.#clearDeadline()
      return
    }
    // the timers may have slept for minutes: ask now, and give the answer a whole timeout
    this.#clearDeadline()
    this.#ping()
  }

  #armDeadline (): void {
    this.#clearDeadline()
    this.#deadline = setTimeout(this.#expired, this.#timeout)
  }

  #clearDeadline (): void {
    if (this.#deadline !== undefined) clearTimeout(this.#deadline)
    this.#deadline = undefined
  }

  readonly #expired = (): void => {
    this.#deadline = undefined
    // a deadline that fired late, in a tab hidden since it was armed, proves nothing
    if (this.#hidden()) {
      this.#awaiting = false
      return
    }
    this.#dead()
  }
}
