// Prometheus metrics (SPEC 12) through prom-client, an optional peer loaded
// only when the `metrics` option asks for it. The hot paths bump plain numbers
// (or read counters the hub keeps anyway); prom-client sees them at scrape time
// through each metric's collect(), so no label hashing and no allocation
// happens per message or per recipient. Handler durations too: their buckets
// are plain arrays, exposed by a histogram that builds its samples at scrape.
import type { FastifyReply, FastifyRequest } from 'fastify'
import type * as PromClient from 'prom-client'
import type { CompiledRoute } from './context.js'
import { parseEnvelope } from './envelope.js'
import { errors } from './errors.js'
import type { MetricsRegistry } from './types.js'

type Prom = typeof PromClient
type Labels = Record<string, string>
/** Counts by label value, kept as plain numbers until a scrape reads them. */
type Counts = Map<string, number>
/** One label pair's handler durations: a count per bucket (the last is +Inf), their sum and count. */
interface Durations { buckets: number[], sum: number, count: number }

/** Why something was not delivered or not processed (`drops_total{reason}`). */
export type DropReason = 'rate_limited' | 'slow_consumer' | 'closed' | 'backlog' | 'history_unavailable'

const DROP_REASONS: readonly DropReason[] = ['rate_limited', 'slow_consumer', 'closed', 'backlog', 'history_unavailable']
const REFUSAL_STATUSES = ['401', '403', '429', '503']
/** Message types every route has; anything else a route did not declare is `unknown`. */
const PROTOCOL_TYPES: ReadonlySet<string> = new Set(['join', 'leave', 'ping', 'auth'])
/** Handler durations from half a millisecond to ten seconds. */
const HANDLER_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Every metric of SPEC 12, by name after the prefix. */
export const METRIC_NAMES = [
  'connections', 'connects_total', 'handshake_refusals_total', 'disconnects_total',
  'messages_received_total', 'messages_sent_total', 'errors_total', 'drops_total',
  'handler_duration_seconds', 'rooms', 'adapter_connected', 'history_recoveries_total'
] as const

/** What the metrics read of the hub at scrape time (the hub has these). */
export interface MetricsSource {
  connections (): Iterable<{ readonly route: { readonly path: string } }>
  stats (): { readonly rooms: number, readonly messagesOut: number, readonly adapter: { readonly connected: boolean } }
}

/** Marks a metric this plugin registered, with the set it belongs to (Symbol.for: shared by every copy of the plugin). */
const kMetricSet = Symbol.for('fastify-realtime.metricSet')

function add (counts: Counts, key: string, n = 1): void {
  counts.set(key, (counts.get(key) ?? 0) + n)
}

function addAll (target: Counts, source: Counts): void {
  for (const [key, n] of source) add(target, key, n)
}

/** route -> type -> value, created on first use. */
function nested<V> (map: Map<string, Map<string, V>>, route: string, type: string, create: () => V): V {
  let byType = map.get(route)
  if (byType === undefined) map.set(route, byType = new Map())
  let value = byType.get(type)
  if (value === undefined) byType.set(type, value = create())
  return value
}

const noDurations = (): Durations => ({ buckets: new Array<number>(HANDLER_BUCKETS.length + 1).fill(0), sum: 0, count: 0 })

function addDurations (target: Map<string, Map<string, Durations>>, source: Map<string, Map<string, Durations>>): void {
  for (const [route, types] of source) {
    for (const [type, d] of types) {
      const into = nested(target, route, type, noDurations)
      for (let i = 0; i < d.buckets.length; i++) into.buckets[i] += d.buckets[i]
      into.sum += d.sum
      into.count += d.count
    }
  }
}

/** Index of the first bucket whose bound holds `seconds` (the last one is +Inf). */
function bucketOf (seconds: number): number {
  let i = 0
  while (i < HANDLER_BUCKETS.length && seconds > HANDLER_BUCKETS[i]) i++
  return i
}

/** One hub's counts (or, in a set, the counts of the hubs that left it). */
class Tallies {
  readonly connects: Counts = new Map()
  readonly refusals: Counts = new Map()
  readonly disconnects: Counts = new Map()
  /** route -> type -> count */
  readonly received = new Map<string, Counts>()
  readonly errors: Counts = new Map()
  readonly drops: Counts = new Map()
  readonly recoveries: Counts = new Map()
  /** route -> type -> handler durations */
  readonly durations = new Map<string, Map<string, Durations>>()
  sent = 0

  addTo (target: Tallies): void {
    addAll(target.connects, this.connects)
    addAll(target.refusals, this.refusals)
    addAll(target.disconnects, this.disconnects)
    addAll(target.errors, this.errors)
    addAll(target.drops, this.drops)
    addAll(target.recoveries, this.recoveries)
    for (const [route, types] of this.received) {
      let into = target.received.get(route)
      if (into === undefined) target.received.set(route, into = new Map())
      addAll(into, types)
    }
    addDurations(target.durations, this.durations)
    target.sent += this.sent
  }
}

/** The metric objects of one registry and prefix, shared by every app and context registered with them. */
class MetricSet {
  readonly members = new Set<RealtimeMetrics>()
  /** what members that left had counted: counters never go back */
  readonly retired = new Tallies()
  readonly #registry: MetricsRegistry
  /** each metric under the name it was registered with (an OpenMetrics registry renames counters in place) */
  readonly #metrics: Array<[string, object]>

  constructor (prom: Prom, registry: MetricsRegistry, prefix: string) {
    this.#registry = registry
    const set = this
    /** A counter read from every member's tallies (and the retired ones) at scrape time. */
    const counter = (name: string, help: string, labelNames: string[], read: (t: Tallies, emit: (labels: Labels, n: number) => void) => void, zeros: Labels[] = []): PromClient.Counter<string> => {
      return new prom.Counter({
        name: prefix + name,
        help,
        labelNames,
        registers: [],
        collect (this: PromClient.Counter<string>) {
          this.reset()
          const emit = (labels: Labels, n: number): void => { this.inc(labels, n) }
          for (const labels of zeros) emit(labels, 0)
          for (const member of set.members) member.zeros(name, emit)
          for (const tallies of set.tallies()) read(tallies, emit)
        }
      })
    }
    const byLabel = (label: string, pick: (t: Tallies) => Counts) => (t: Tallies, emit: (labels: Labels, n: number) => void) => {
      for (const [value, n] of pick(t)) emit({ [label]: value }, n)
    }
    const metrics = [
      new prom.Gauge({
        name: prefix + 'connections',
        help: 'Open WebSocket connections on this instance, by route',
        labelNames: ['route'],
        registers: [],
        collect (this: PromClient.Gauge<string>) {
          this.reset()
          for (const member of set.members) {
            for (const route of member.routes) this.set({ route }, 0)
            for (const conn of member.source.connections()) this.inc({ route: conn.route.path })
          }
        }
      }),
      counter('connects_total', 'Connections opened, by route', ['route'], byLabel('route', (t) => t.connects)),
      counter('handshake_refusals_total', 'Upgrades refused before the WebSocket opened, by HTTP status', ['status'],
        byLabel('status', (t) => t.refusals), REFUSAL_STATUSES.map((status) => ({ status }))),
      counter('disconnects_total', 'Connections closed, by the close code of the closing handshake (1006: abrupt)', ['code'], byLabel('code', (t) => t.disconnects)),
      counter('messages_received_total', 'Text messages received, by route and message type (undeclared types and bad JSON as unknown)', ['route', 'type'],
        (t, emit) => {
          for (const [route, types] of t.received) for (const [type, n] of types) emit({ route, type }, n)
        }),
      counter('messages_sent_total', 'Envelopes written to connections (a broadcast to n members counts n)', [], (t, emit) => { emit({}, t.sent) }),
      counter('errors_total', 'Error envelopes sent to clients, by error code', ['code'], byLabel('code', (t) => t.errors)),
      counter('drops_total', 'Messages not delivered or not processed, and slow consumers dropped, by reason', ['reason'],
        byLabel('reason', (t) => t.drops), DROP_REASONS.map((reason) => ({ reason }))),
      new HandlerHistogram(prefix + 'handler_duration_seconds', set),
      new prom.Gauge({
        name: prefix + 'rooms',
        help: 'Rooms with a member on this instance',
        registers: [],
        collect (this: PromClient.Gauge<string>) {
          let rooms = 0
          for (const member of set.members) rooms += member.source.stats().rooms
          this.set(rooms)
        }
      }),
      new prom.Gauge({
        name: prefix + 'adapter_connected',
        help: '1 while the adapter delivers across instances (always 1 with the in-memory adapter), else 0',
        registers: [],
        collect (this: PromClient.Gauge<string>) {
          let connected = true
          for (const member of set.members) connected &&= member.source.stats().adapter.connected
          this.set(connected ? 1 : 0)
        }
      }),
      counter('history_recoveries_total', 'Joins that asked to resume from an offset, by whether every missed message was sent', ['recovered'],
        byLabel('recovered', (t) => t.recoveries), [{ recovered: 'true' }, { recovered: 'false' }])
    ]
    this.#metrics = metrics.map((metric) => [(metric as { name: string }).name, metric])
    for (const metric of metrics) Object.defineProperty(metric, kMetricSet, { value: this })
  }

  /** The retired tallies, then every member's (its `sent` refreshed first). */
  * tallies (): Iterable<Tallies> {
    yield this.retired
    for (const member of this.members) {
      member.refresh()
      yield member.tallies
    }
  }

  register (): void {
    for (const [, metric] of this.#metrics) this.#registry.registerMetric(metric)
  }

  leave (member: RealtimeMetrics): void {
    if (!this.members.delete(member)) return
    member.refresh()
    member.tallies.addTo(this.retired)
    if (this.members.size > 0) return
    // the last one out takes the metrics away: a new app in this process starts from zero
    for (const [name, metric] of this.#metrics) {
      if (this.#registry.getSingleMetric(name) === metric) this.#registry.removeSingleMetric(name)
    }
  }
}

/**
 * `handler_duration_seconds`: a histogram whose samples are built at scrape
 * time from the members' plain bucket counts (prom-client's own Histogram
 * hashes its labels on every observe). It has what a registry uses of a
 * metric: `name`, `help`, `type`, `get()` in prom-client's shape, `reset()`.
 */
class HandlerHistogram {
  readonly name: string
  readonly help = 'Duration of message handler runs, failures included, by route and message type'
  readonly type = 'histogram'
  readonly aggregator = 'sum'
  readonly labelNames = ['route', 'type']
  readonly #set: MetricSet

  constructor (name: string, set: MetricSet) {
    this.name = name
    this.#set = set
  }

  async get (): Promise<{ name: string, help: string, type: string, aggregator: string, values: Array<{ labels: Record<string, string | number>, value: number, metricName: string }> }> {
    const sums = new Map<string, Map<string, Durations>>()
    for (const tallies of this.#set.tallies()) addDurations(sums, tallies.durations)
    const values = []
    for (const [route, types] of sums) {
      for (const [type, d] of types) {
        let cumulative = 0
        for (let i = 0; i < d.buckets.length; i++) {
          cumulative += d.buckets[i]
          const le = i < HANDLER_BUCKETS.length ? HANDLER_BUCKETS[i] : '+Inf'
          values.push({ labels: { le, route, type }, value: cumulative, metricName: `${this.name}_bucket` })
        }
        values.push({ labels: { route, type }, value: d.sum, metricName: `${this.name}_sum` })
        values.push({ labels: { route, type }, value: d.count, metricName: `${this.name}_count` })
      }
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }

  /** Values are read from the plugin's counts at scrape time: there is nothing to reset here. */
  reset (): void {}
}

/** The set already in `registry` under `prefix`, if this plugin registered it; throws if a name is taken by another metric. */
function existingSet (registry: MetricsRegistry, prefix: string): MetricSet | undefined {
  const first = registry.getSingleMetric(prefix + METRIC_NAMES[0]) as Record<symbol, MetricSet | undefined> | undefined
  const set = first?.[kMetricSet]
  if (set instanceof MetricSet) return set
  for (const name of METRIC_NAMES) {
    if (registry.getSingleMetric(prefix + name) !== undefined) throw new errors.FST_REALTIME_METRIC_EXISTS(prefix + name)
  }
  return undefined
}

function typeLabel (route: Pick<CompiledRoute, 'messages'>, type: string | undefined): string {
  if (type === undefined) return 'unknown'
  return PROTOCOL_TYPES.has(type) || route.messages.has(type) ? type : 'unknown'
}

/**
 * One hub's metrics: what the hub and its connections count, and the
 * registration of the shared metric set. Created before the routes, attached to
 * the registry at the end of `register`, detached by `app.close()`.
 */
export class RealtimeMetrics {
  readonly tallies = new Tallies()
  readonly routes = new Set<string>()
  readonly source: MetricsSource
  readonly #prom: Prom
  readonly #registry: MetricsRegistry
  readonly #prefix: string
  #set: MetricSet | undefined

  constructor (prom: Prom, settings: { registry: MetricsRegistry | undefined, prefix: string }, source: MetricsSource) {
    this.#prom = prom
    this.#registry = settings.registry ?? prom.register
    this.#prefix = settings.prefix
    this.source = source
  }

  /** Register the metrics (or join the set another registration made in the same registry and prefix). */
  attach (): void {
    if (this.#set !== undefined) return
    let set = existingSet(this.#registry, this.#prefix)
    if (set === undefined) {
      set = new MetricSet(this.#prom, this.#registry, this.#prefix)
      set.register()
    }
    set.members.add(this)
    this.#set = set
  }

  /** `app.close()`: stop being read; the last registration out removes the metrics from the registry. */
  detach (): void {
    this.#set?.leave(this)
    this.#set = undefined
  }

  /** Zero values of this hub's label sets, so a route shows up before its first connection. */
  zeros (name: string, emit: (labels: Labels, n: number) => void): void {
    if (name === 'connects_total') for (const route of this.routes) emit({ route }, 0)
  }

  /** Read what the hub counts anyway (envelopes written) into the tallies. */
  refresh (): void {
    this.tallies.sent = this.source.stats().messagesOut
  }

  addRoute (path: string): void {
    this.routes.add(path)
  }

  connected (route: string): void {
    add(this.tallies.connects, route)
  }

  disconnected (code: number): void {
    add(this.tallies.disconnects, String(code))
  }

  /** One text message arrived on `route`; `type` undefined when it was not a valid envelope. */
  received (route: Pick<CompiledRoute, 'path' | 'messages'>, type: string | undefined): void {
    let types = this.tallies.received.get(route.path)
    if (types === undefined) this.tallies.received.set(route.path, types = new Map())
    add(types, typeLabel(route, type))
  }

  /** A text message the plugin will not parse itself (the connection is closing, or is being closed for it): parse it for its label. */
  receivedText (route: Pick<CompiledRoute, 'path' | 'messages'>, data: Buffer | string): void {
    const parsed = parseEnvelope(data.toString())
    this.received(route, parsed.ok ? parsed.envelope.type : undefined)
  }

  /** Messages that waited behind a handler and were never processed (the connection closed). */
  receivedUnprocessed (route: Pick<CompiledRoute, 'path' | 'messages'>, frames: readonly Buffer[] | undefined): void {
    if (frames !== undefined) for (const frame of frames) this.receivedText(route, frame)
  }

  error (code: string): void {
    add(this.tallies.errors, code)
  }

  dropped (reason: DropReason): void {
    add(this.tallies.drops, reason)
  }

  /**
   * A join with `since` was answered: `recovered` true when every missed
   * message was sent. For the history code (`hub.metrics?.recovery(recovered)`).
   */
  recovery (recovered: boolean): void {
    add(this.tallies.recoveries, recovered ? 'true' : 'false')
  }

  observeHandler (route: string, type: string, seconds: number): void {
    const d = nested(this.tallies.durations, route, type, noDurations)
    d.buckets[bucketOf(seconds)]++
    d.sum += seconds
    d.count++
  }

  /** Wrap the handshake hook so each refusal it throws is counted by its HTTP status. */
  countRefusals (hook: (request: FastifyRequest, reply: FastifyReply) => Promise<void>): (request: FastifyRequest, reply: FastifyReply) => Promise<void> {
    const refusals = this.tallies.refusals
    return async function realtimeHandshake (request: FastifyRequest, reply: FastifyReply): Promise<void> {
      try {
        await hook(request, reply)
      } catch (err) {
        add(refusals, String((err as { statusCode?: unknown }).statusCode ?? 500))
        throw err
      }
    }
  }
}

/** Import prom-client, or fail `register` saying to install it. */
export async function loadPromClient (load: () => Promise<unknown> = async () => await import('prom-client')): Promise<Prom> {
  let mod
  try {
    mod = await load() as Prom & { default?: Prom }
  } catch (err) {
    throw new errors.FST_REALTIME_MISSING_PEER('the metrics option', 'prom-client', { cause: err })
  }
  // a CommonJS module: its exports as named exports, or under `default`
  return typeof mod.Counter === 'function' ? mod : mod.default as Prom
}

/** The metrics of one hub, prom-client loaded; `attach()` registers them. */
export async function createMetrics (settings: { registry: MetricsRegistry | undefined, prefix: string }, source: MetricsSource): Promise<RealtimeMetrics> {
  return new RealtimeMetrics(await loadPromClient(), settings, source)
}
