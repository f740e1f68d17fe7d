// Type tests of the public API: checked by `npm run typecheck` (tsc), never run.
// Each @ts-expect-error line must stay an error; a type that loosened would fail the check.
import Fastify, { type FastifyRequest } from 'fastify'
import { Type } from '@sinclair/typebox'
import realtime, {
  defineRoute, RealtimeError, CloseCode, ErrorCode,
  type Connection, type Member, type RealtimeStats, type RealtimeServer
} from '../../lib/index.js'

declare module '../../lib/index.js' {
  interface RealtimeUser {
    sub: string
    rooms?: string[]
  }
}

/** Marks values as used. */
function use (..._values: unknown[]): void {}

const app = Fastify()

// app.realtime is typed through declaration merging
const server: RealtimeServer = app.realtime
server.broadcast('room', 'type', { any: 'data' })
server.broadcast('room', 'type', 1, { except: 'conn-id' })
server.broadcast('room', 'type', 1, { except: ['a', 'b'] })
// @ts-expect-error except takes ids, not numbers
server.broadcast('room', 'type', 1, { except: 1 })
const sent: boolean = server.send('id', 'type', {})
server.sendToUser('alice', 'type', {})
const members: Promise<Member[]> = server.members('room')
const rooms: string[] = server.rooms()
const conns: Connection[] = server.connections()
const stats: RealtimeStats = server.stats()
const count: number = stats.connections + stats.messagesIn + stats.messagesOut + stats.drops + stats.errors + stats.rooms
use(sent, members, rooms, conns, count)

// handlers get `data` typed from their schema
const chat = defineRoute({
  path: '/chat',
  messages: {
    'chat.send': {
      schema: Type.Object({ text: Type.String(), n: Type.Optional(Type.Number()) }),
      handler (conn, data, msg) {
        const text: string = data.text
        const n: number | undefined = data.n
        // @ts-expect-error text is a string
        const wrong: number = data.text
        // @ts-expect-error no such field in the schema
        use(data.missing)
        const room: string | undefined = msg.room
        conn.broadcast(room ?? 'lobby', 'chat.message', { from: conn.user.sub, text })
        use(n, wrong)
        return { ok: true as const }
      }
    },
    count: {
      schema: Type.Number(),
      async handler (_conn, data) {
        const doubled: number = data * 2
        return doubled
      }
    }
  },
  canJoin: (conn, room) => room.startsWith('public:') || conn.user.rooms?.includes(room),
  onConnect: async (conn) => { await conn.join('user:' + conn.user.sub) },
  onClose: (conn, code, reason) => { use(conn.id, code + 1, reason.length) }
})

app.realtime.route({
  path: '/feed',
  messages: {
    subscribe: {
      schema: Type.Object({ topic: Type.String() }),
      handler (_conn, data) {
        // @ts-expect-error topic is a string
        const t: number = data.topic
        return t
      }
    }
  }
})

await app.register(realtime, {
  routes: [chat],
  maxConnections: 10_000,
  maxPayload: 64 * 1024,
  heartbeat: { interval: 30_000 },
  rateLimit: { max: 100, windowMs: 1000 },
  allowedOrigins: ['https://example.com'],
  auth: { required: false, extractToken: (request) => request.headers['x-token'] as string | undefined }
})
await app.register(realtime, { heartbeat: false, allowedOrigins: (origin) => origin.endsWith('.example.com') })
// @ts-expect-error maxConnections is a number
await app.register(realtime, { maxConnections: 'many' })
// @ts-expect-error unknown option
await app.register(realtime, { maxConnection: 10 })

// connection API
declare const conn: Connection
conn.send('type', { a: 1 })
conn.close(CloseCode.KICKED, 'banned')
conn.close(4403)
const id: string = conn.id
const inRooms: ReadonlySet<string> = conn.rooms
// @ts-expect-error rooms is read-only
conn.rooms.add('x')
use(id, inRooms)
// the upgrade request: Fastify's request with a slim raw
const agent: string | undefined = conn.request.headers['user-agent']
const ip: string = conn.request.ip
const requestId: string = conn.request.id
const rawUrl: string | undefined = conn.request.raw.url
conn.request.log.info('still the request logger')
// @ts-expect-error the IncomingMessage's raw header list is not kept
use(conn.request.raw.rawHeaders)
// @ts-expect-error nor its stream methods
conn.request.raw.pipe(process.stdout)
use(agent, ip, requestId, rawUrl)
// where a FastifyRequest is wanted: a cast, not an implicit assignment
function audit (request: FastifyRequest): string { return request.id }
audit(conn.request as FastifyRequest)
// @ts-expect-error raw is not an IncomingMessage any more
audit(conn.request)
const major: number = conn.request.raw.httpVersionMajor
const asked: string | undefined = conn.request.raw.originalUrl
use(major, asked)

// errors
const err = new RealtimeError('room is full', { code: 'ROOM_FULL' })
const code: string = err.code
const wire: 'BAD_JSON' = ErrorCode.BAD_JSON
use(code, wire)
