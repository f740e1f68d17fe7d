// `npm start`: the example chat on 127.0.0.1:3000 (HOST, PORT override).
// TLS_KEY and TLS_CERT (file paths) serve HTTPS and wss:// instead.
// REDIS_URL: rooms, presence and history in Redis (several instances; history survives a restart).
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { requestSerializer } from 'fastify-realtime'
import { build } from './app.js'

const { HOST = '127.0.0.1', PORT = '3000', TLS_KEY, TLS_CERT, LOG_LEVEL = 'info', REDIS_URL } = process.env

let jwtSecret = process.env.JWT_SECRET
if (jwtSecret === undefined || jwtSecret === '') {
  jwtSecret = randomBytes(32).toString('hex')
  console.warn('warning: JWT_SECRET is not set; using a random secret, so tokens do not survive a restart')
}

let https
if (TLS_KEY !== undefined || TLS_CERT !== undefined) {
  if (!TLS_KEY || !TLS_CERT) {
    console.error('set both TLS_KEY and TLS_CERT (paths to a PEM key and certificate), or neither')
    process.exit(1)
  }
  https = { key: readFileSync(TLS_KEY), cert: readFileSync(TLS_CERT) }
}

// with REDIS_URL: the Redis adapter (ioredis must be installed), so history lives in Redis
let adapter
if (REDIS_URL !== undefined && REDIS_URL !== '') {
  const { redisAdapter } = await import('fastify-realtime/redis')
  adapter = redisAdapter({ url: REDIS_URL, keyPrefix: 'example-chat' })
}

// requestSerializer: a ?token= JWT never reaches the request log, whatever the path
const app = await build({ jwtSecret, https, adapter, logger: { level: LOG_LEVEL, serializers: { req: requestSerializer } } })
const address = await app.listen({ host: HOST, port: Number(PORT) })
console.log(`example chat listening on ${address}`)

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    app.close().then(() => process.exit(0), () => process.exit(1))
  })
}
