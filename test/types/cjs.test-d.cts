// `import x = require()` from a CommonJS TypeScript file: the package is the plugin itself.
import realtime = require('fastify-realtime')
import Fastify = require('fastify')

const app = Fastify()
app.register(realtime, { maxPayload: 1024, routes: [{ path: '/rt' }] })
app.register(realtime.default, { heartbeat: false })
app.register(realtime.realtime)
const options: realtime.RealtimeOptions = { maxConnections: 10 }
const error: realtime.RealtimeError = new realtime.RealtimeError('nope', { code: 'NOPE' })
const code: number = realtime.CloseCode.KICKED
const route = realtime.defineRoute({ path: '/typed', messages: {} })
void options
void error
void code
void route

// @ts-expect-error maxPayload is a number
app.register(realtime, { maxPayload: 'big' })
// @ts-expect-error not an option
app.register(realtime, { maxConnection: 5 })
