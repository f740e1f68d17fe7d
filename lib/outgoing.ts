// What the server sends, checked against what the routes declare (`emits`,
// `ack`): one table of emitted types for the whole app, as room names are
// app-wide, and the check `validateOutgoing` turns on.
import type { CompiledRoute, CompiledSchema } from './context.js'
import { schemaErrors } from './envelope.js'
import { errors } from './errors.js'
import { schemaFingerprint } from './schema.js'

interface Declared extends CompiledSchema {
  /** the route that declared it first */
  path: string
  fingerprint: string
}

/** Most failing paths named in the error's message. */
const MAX_PATHS = 10

/** The FST_REALTIME_INVALID_OUTGOING error for `data` failing `declared`, or undefined when it matches. */
export function outgoingError (what: string, declared: CompiledSchema, data: unknown): Error | undefined {
  let details
  try {
    if (declared.check.Check(data)) return undefined
    details = schemaErrors(declared.check, data, MAX_PATHS)
  } catch (err) {
    // a recursive schema meeting absurdly deep data can exhaust the stack
    details = [{ path: '/', message: `could not be validated (${(err as Error).message})` }]
  }
  const paths = details.map((d) => `${d.path} ${d.message}`).join('; ')
  return new errors.FST_REALTIME_INVALID_OUTGOING(what, paths === '' ? '/ does not match' : paths)
}

/** The failure of a handler result against its message's `ack` schema, or undefined. */
export function ackError (type: string, ack: CompiledSchema, data: unknown): Error | undefined {
  return outgoingError(`the ack of message ${JSON.stringify(type)}`, ack, data)
}

/**
 * The app's emitted types and the outgoing check. With `validate` off
 * (production by default) `check` costs one branch.
 */
export class OutgoingContract {
  readonly validate: boolean
  readonly #declared = new Map<string, Declared>()

  constructor (validate: boolean) {
    this.validate = validate
  }

  /**
   * Add a route's emitted types. A type another route declared with another
   * schema fails with FST_REALTIME_INVALID_ROUTE, and nothing of this route is added.
   */
  declare (route: CompiledRoute): void {
    const added: Array<[string, Declared]> = []
    for (const [type, compiled] of route.emits) {
      const fingerprint = schemaFingerprint(compiled.schema)
      const earlier = this.#declared.get(type)
      if (earlier !== undefined && earlier.fingerprint !== fingerprint) {
        throw new errors.FST_REALTIME_INVALID_ROUTE(JSON.stringify(route.path), `emitted type "${type}" is declared by route ${JSON.stringify(earlier.path)} with another schema (emitted type names are app-wide)`)
      }
      if (earlier === undefined) added.push([type, { ...compiled, path: route.path, fingerprint }])
    }
    for (const [type, declared] of added) this.#declared.set(type, declared)
  }

  /** Throw FST_REALTIME_INVALID_OUTGOING when `type` is declared and `data` does not match it. */
  check (type: string, data: unknown): void {
    if (!this.validate) return
    const declared = this.#declared.get(type)
    if (declared === undefined) return
    const err = outgoingError(`message type ${JSON.stringify(type)}`, declared, data)
    if (err !== undefined) throw err
  }
}
