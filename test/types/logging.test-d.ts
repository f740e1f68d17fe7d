// Type tests: requestSerializer drops into Fastify's logger options under strict,
// whatever the server (http or https). Checked by `npm run typecheck`, never run.
import Fastify from 'fastify'
import { requestSerializer } from '../../lib/index.js'

const logger = { level: 'info', serializers: { req: requestSerializer } }
const app = Fastify({ logger })
const secure = Fastify({ https: { key: 'key', cert: 'cert' }, logger: { serializers: { req: requestSerializer } } })
// an app's own serializer may wrap it
const wrapped = Fastify({ logger: { serializers: { req: (req) => ({ ...requestSerializer(req), id: req.id }) } } })
const url: string | undefined = requestSerializer({ url: '/chat?token=x' }).url
/** Marks values as used. */
function use (..._values: unknown[]): void {}
use(app, secure, wrapped, url)
