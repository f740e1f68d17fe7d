/** The plugin's bench server started with `options` (see realtime.js `start`). */
function realtimeWith (options) {
  return async () => {
    const { start } = await import('./realtime.js')
    return { start: () => start(options) }
  }
}

/**
 * The servers under test. `client` says which load-generator client speaks
 * to it: the same ws client and JSON envelopes for every ws-based server,
 * socket.io-client (websocket transport only) for Socket.IO.
 */
export const SERVERS = {
  realtime: {
    label: 'fastify-realtime',
    client: 'ws',
    auth: true,
    load: () => import('./realtime.js')
  },
  'realtime-metrics': {
    label: 'realtime+metrics',
    client: 'ws',
    auth: true,
    experimental: true,
    load: realtimeWith({ metrics: true })
  },
  // the same plugin and route with every room keeping its last 1,000 messages
  // (in memory): each broadcast gets an offset and is kept
  'realtime-history': {
    label: 'rt + history',
    client: 'ws',
    auth: true,
    load: realtimeWith({ history: { size: 1000 } })
  },
  // the plugin without JWT: every upgrade anonymous, nothing verified
  'realtime-anon': {
    label: 'rt, no JWT',
    client: 'ws',
    auth: false,
    experimental: true,
    load: realtimeWith({ anonymous: true })
  },
  'ws-loop': {
    label: 'ws loop',
    client: 'ws',
    auth: false,
    load: async () => (await import('./raw-ws.js')).variant('loop')
  },
  'ws-corked': {
    label: 'ws corked',
    client: 'ws',
    auth: false,
    load: async () => (await import('./raw-ws.js')).variant('corked')
  },
  'ws-preframed': {
    label: 'ws pre-framed',
    client: 'ws',
    auth: false,
    load: async () => (await import('./raw-ws.js')).variant('preframed')
  },
  'ws-batched': {
    label: 'ws batched',
    client: 'ws',
    auth: false,
    experimental: true,
    load: async () => (await import('./raw-ws.js')).variant('batched')
  },
  // Fastify + @fastify/websocket with the pre-framed rooms, no JWT, no plugin:
  // where routing an upgrade through Fastify alone puts the connect cost
  'fastify-ws': {
    label: 'fastify+ws',
    client: 'ws',
    auth: false,
    experimental: true,
    load: () => import('./fastify-ws.js')
  },
  socketio: {
    label: 'Socket.IO 4',
    client: 'socketio',
    auth: false,
    load: () => import('./socketio.js')
  }
}

/** The plugin; every ratio is this server's figure over another's. */
export const SUBJECT = 'realtime'
