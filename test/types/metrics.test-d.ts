// Type tests of the metrics and log options: checked by `npm run typecheck` (tsc), never run.
import Fastify from 'fastify'
import { Registry, register, type OpenMetricsContentType } from 'prom-client'
import realtime, { type MetricsOptions, type RealtimeOptions } from '../../lib/index.js'

const app = Fastify()

// prom-client's registries fit, though the plugin's types never import prom-client
await app.register(realtime, { metrics: { registry: new Registry(), prefix: 'chat_' } })
await app.register(realtime, { metrics: { registry: register } })
await app.register(realtime, { metrics: { registry: new Registry<OpenMetricsContentType>() } })
await app.register(realtime, { metrics: false })
const options: MetricsOptions = { prefix: '' }
export const all: RealtimeOptions = { metrics: options, connectionLogLevel: 'debug' }

// @ts-expect-error a registry is an object with registerMetric, getSingleMetric and removeSingleMetric
await app.register(realtime, { metrics: { registry: {} } })
// @ts-expect-error not a level
await app.register(realtime, { connectionLogLevel: 'verbose' })
// @ts-expect-error `metrics` is true or an object
await app.register(realtime, { metrics: 'on' })
