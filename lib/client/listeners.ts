import type { Envelope, Listener } from './types.js'

/** Listeners by event or message type; a listener that throws is reported, never breaks the client. */
export class Listeners {
  readonly #byType = new Map<string, Set<Listener<any>>>()

  add (type: string, fn: Listener<any>): void {
    let set = this.#byType.get(type)
    if (set === undefined) {
      set = new Set()
      this.#byType.set(type, set)
    }
    set.add(fn)
  }

  remove (type: string, fn: Listener<any>): void {
    const set = this.#byType.get(type)
    if (set === undefined) return
    set.delete(fn)
    if (set.size === 0) this.#byType.delete(type)
  }

  emit (type: string, data: unknown, msg: Envelope): void {
    const set = this.#byType.get(type)
    if (set === undefined) return
    for (const fn of [...set]) {
      try {
        fn(data, msg)
      } catch (err) {
        // a throwing listener must not break the connection logic, nor hide the error
        reportError(err)
      }
    }
  }
}

/** Browsers report it like an uncaught error; Node logs it (crashing a process for a listener bug is the app's call). */
export function reportError (err: unknown): void {
  const report = (globalThis as { reportError?: (err: unknown) => void }).reportError
  if (typeof report === 'function') report(err)
  else console.error('fastify-realtime client: a listener threw', err)
}
