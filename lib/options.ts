import type { Adapter } from './adapters/adapter.js'
import { errors } from './errors.js'
import { MAX_HISTORY_SIZE, MIN_HISTORY_TTL, type HistorySettings } from './history/store.js'
import type { AllowedOrigins, AuthOptions, ConnectionLogLevel, MetricsRegistry, RealtimeOptions, RouteDefinition } from './types.js'

/** Options after defaults and validation; frozen. */
export interface ResolvedOptions {
  readonly routes: ReadonlyArray<RouteDefinition<any>>
  readonly auth: Readonly<Required<Pick<AuthOptions, 'required'>> & Pick<AuthOptions, 'extractToken'>>
  readonly maxConnections: number
  readonly maxConnectionsPerUser: number
  readonly maxPayload: number
  readonly heartbeat: Readonly<{ interval: number }> | false
  readonly maxRoomsPerConnection: number
  readonly rateLimit: Readonly<{ max: number, windowMs: number }>
  readonly maxBufferedBytes: number
  readonly allowedOrigins: AllowedOrigins | undefined
  readonly adapter: Adapter | undefined
  readonly closeGracePeriod: number
  readonly perMessageDeflate: boolean
  readonly canJoin: RouteDefinition['canJoin']
  readonly adapterTimeout: number
  readonly metrics: Readonly<{ registry: MetricsRegistry | undefined, prefix: string }> | undefined
  readonly connectionLogLevel: ConnectionLogLevel
  readonly history: HistorySettings | undefined
  readonly drain: Readonly<{ spread: number, retry: number }>
}

const MAX_TIMER_MS = 2 ** 31 - 1

/** Every top-level option key; anything else fails `register` with the nearest of these. */
export const OPTION_NAMES: readonly string[] = [
  'routes', 'auth', 'maxConnections', 'maxConnectionsPerUser', 'maxPayload', 'heartbeat',
  'maxRoomsPerConnection', 'rateLimit', 'maxBufferedBytes', 'allowedOrigins', 'adapter',
  'closeGracePeriod', 'perMessageDeflate', 'canJoin', 'adapterTimeout',
  'metrics', 'connectionLogLevel', 'history', 'drain'
]

const everyRoom = (): boolean => true

function fail (name: string, problem: string): never {
  throw new errors.FST_REALTIME_INVALID_OPTION(name, problem)
}

/** Levenshtein distance, for "did you mean". */
function distance (a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]
      row[j] = Math.min(row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1))
      diagonal = above
    }
  }
  return row[b.length]
}

/** The known name closest to `key` (case-insensitive edit distance). */
export function nearest (key: string, known: readonly string[]): string {
  let best = known[0]
  let bestDistance = Infinity
  for (const name of known) {
    const d = distance(key.toLowerCase(), name.toLowerCase())
    if (d < bestDistance) {
      best = name
      bestDistance = d
    }
  }
  return best
}

/** Fail on a key that is not an option, naming the nearest one (`maxConnection` -> `maxConnections`). */
export function rejectUnknownKeys (prefix: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key)) fail(prefix + key, `is not an option; did you mean "${prefix}${nearest(key, known)}"?`)
  }
}

function integer (name: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    fail(name, `must be an integer from ${min} to ${max}, got ${JSON.stringify(value)}`)
  }
  return value
}

function object (name: string, value: unknown): Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail(name, 'must be an object')
  return value as Record<string, unknown>
}

function origins (value: unknown): AllowedOrigins | undefined {
  if (value === undefined || value === '*' || typeof value === 'function') return value as AllowedOrigins | undefined
  if (Array.isArray(value) && value.every((o) => typeof o === 'string')) return Object.freeze([...value])
  return fail('allowedOrigins', "must be '*', an array of origins or a function")
}

function adapter (value: unknown): Adapter | undefined {
  if (value === undefined) return undefined
  const a = value as Partial<Adapter>
  for (const method of ['attach', 'publish', 'publishToUser', 'join', 'leave', 'members', 'close'] as const) {
    if (typeof a?.[method] !== 'function') fail('adapter', `must implement ${method}()`)
  }
  return value as Adapter
}

const LOG_LEVELS: readonly string[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']
/** A Prometheus metric name prefix: the name's own characters, or nothing. */
const METRIC_PREFIX = /^(?:[a-zA-Z_:][a-zA-Z0-9_:]*)?$/

function metrics (value: unknown): ResolvedOptions['metrics'] {
  if (value === undefined || value === false) return undefined
  if (value === true) return Object.freeze({ registry: undefined, prefix: 'realtime_' })
  if (value === null || typeof value !== 'object' || Array.isArray(value)) fail('metrics', 'must be true or an object { registry?, prefix? }')
  rejectUnknownKeys('metrics.', value as Record<string, unknown>, ['registry', 'prefix'])
  const { registry, prefix = 'realtime_' } = value as Record<string, unknown>
  if (registry !== undefined) {
    const r = registry as Partial<MetricsRegistry> | null
    if (typeof r?.registerMetric !== 'function' || typeof r.getSingleMetric !== 'function' || typeof r.removeSingleMetric !== 'function') {
      fail('metrics.registry', 'must be a prom-client Registry')
    }
  }
  if (typeof prefix !== 'string' || !METRIC_PREFIX.test(prefix)) fail('metrics.prefix', `must be a Prometheus name prefix (letters, digits, _ and :, not starting with a digit), got ${JSON.stringify(prefix)}`)
  return Object.freeze({ registry: registry as MetricsRegistry | undefined, prefix })
}

function history (value: unknown): HistorySettings | undefined {
  if (value === undefined || value === false) return undefined
  const historyObject = object('history', value)
  rejectUnknownKeys('history.', historyObject, ['size', 'ttl', 'rooms'])
  const { size, ttl = 300_000, rooms = everyRoom } = historyObject
  if (size === undefined) fail('history.size', `is required: how many messages a room keeps, from 1 to ${MAX_HISTORY_SIZE}`)
  if (typeof rooms !== 'function') fail('history.rooms', 'must be a function (room) => boolean')
  return Object.freeze({
    size: integer('history.size', size, 1, MAX_HISTORY_SIZE),
    ttl: integer('history.ttl', ttl, MIN_HISTORY_TTL, MAX_TIMER_MS),
    rooms: rooms as HistorySettings['rooms']
  })
}

function drain (value: unknown): ResolvedOptions['drain'] {
  const drainObject = object('drain', value)
  rejectUnknownKeys('drain.', drainObject, ['spread', 'retry'])
  const { spread = 0, retry = 1000 } = drainObject
  return Object.freeze({ spread: integer('drain.spread', spread, 0, MAX_TIMER_MS), retry: integer('drain.retry', retry, 0, MAX_TIMER_MS) })
}

/**
 * Applies defaults and validates every option, naming the bad one; a key that
 * is not an option fails too, with the nearest known name.
 * @param {RealtimeOptions} opts
 */
export function resolveOptions (opts: RealtimeOptions = {}): ResolvedOptions {
  rejectUnknownKeys('', object('options', opts), OPTION_NAMES)
  const {
    routes = [],
    auth = {},
    maxConnections = 10_000,
    maxConnectionsPerUser = Number.MAX_SAFE_INTEGER,
    maxPayload = 65_536,
    heartbeat = { interval: 30_000 },
    maxRoomsPerConnection = 100,
    rateLimit = {},
    maxBufferedBytes = 1024 * 1024,
    allowedOrigins,
    closeGracePeriod = 5000,
    perMessageDeflate = false,
    canJoin,
    adapterTimeout = 1000,
    connectionLogLevel = 'info',
    drain: drainOption = {}
  } = opts

  if (!Array.isArray(routes)) fail('routes', 'must be an array of route definitions')
  const authObject = object('auth', auth)
  rejectUnknownKeys('auth.', authObject, ['required', 'extractToken'])
  const { required = true, extractToken } = authObject
  if (typeof required !== 'boolean') fail('auth.required', 'must be a boolean')
  if (extractToken !== undefined && typeof extractToken !== 'function') fail('auth.extractToken', 'must be a function')
  let beat: ResolvedOptions['heartbeat'] = false
  if (heartbeat !== false) {
    const heartbeatObject = object('heartbeat', heartbeat)
    rejectUnknownKeys('heartbeat.', heartbeatObject, ['interval'])
    const { interval = 30_000 } = heartbeatObject
    beat = Object.freeze({ interval: integer('heartbeat.interval', interval, 10, MAX_TIMER_MS) })
  }
  const rateObject = object('rateLimit', rateLimit)
  rejectUnknownKeys('rateLimit.', rateObject, ['max', 'windowMs'])
  const { max = 100, windowMs = 1000 } = rateObject
  if (typeof perMessageDeflate !== 'boolean') fail('perMessageDeflate', 'must be a boolean')
  if (canJoin !== undefined && typeof canJoin !== 'function') fail('canJoin', 'must be a function (conn, room) => boolean | Promise<boolean>')
  if (!LOG_LEVELS.includes(connectionLogLevel)) fail('connectionLogLevel', `must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(connectionLogLevel)}`)

  return Object.freeze({
    routes: Object.freeze([...(routes as RouteDefinition[])]),
    auth: Object.freeze({ required, extractToken: extractToken as AuthOptions['extractToken'] }),
    maxConnections: integer('maxConnections', maxConnections, 1),
    maxConnectionsPerUser: integer('maxConnectionsPerUser', maxConnectionsPerUser, 1),
    maxPayload: integer('maxPayload', maxPayload, 64),
    heartbeat: beat,
    maxRoomsPerConnection: integer('maxRoomsPerConnection', maxRoomsPerConnection, 1),
    rateLimit: Object.freeze({ max: integer('rateLimit.max', max, 1), windowMs: integer('rateLimit.windowMs', windowMs, 1, MAX_TIMER_MS) }),
    maxBufferedBytes: integer('maxBufferedBytes', maxBufferedBytes, 1024),
    allowedOrigins: origins(allowedOrigins),
    adapter: adapter(opts.adapter),
    closeGracePeriod: integer('closeGracePeriod', closeGracePeriod, 0, MAX_TIMER_MS),
    perMessageDeflate,
    canJoin,
    adapterTimeout: integer('adapterTimeout', adapterTimeout, 1, MAX_TIMER_MS),
    metrics: metrics(opts.metrics),
    connectionLogLevel,
    history: history(opts.history),
    drain: drain(drainOption)
  })
}
