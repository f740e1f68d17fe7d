import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import jwt from '@fastify/jwt'
import { Writable } from 'node:stream'
import realtime from '../lib/index.js'
import { redactUrl, redactedRequest } from '../lib/log.js'
import { SECRET, connect, listen, sign } from './helpers.js'
import { refusal, until } from './support/upgrade.js'

/** An app logging everything (trace) as JSON lines into `lines`. */
async function loggedApp (t: { after: (fn: () => unknown) => void }): Promise<{ app: FastifyInstance, lines: string[] }> {
  const lines: string[] = []
  const stream = new Writable({
    write (chunk, _encoding, callback) {
      lines.push(...chunk.toString().split('\n').filter(Boolean))
      callback()
    }
  })
  const app = Fastify({ logger: { level: 'trace', stream } })
  t.after(() => app.close())
  await app.register(jwt, { secret: SECRET })
  await app.register(realtime, { routes: [{ path: '/rt' }] })
  return { app, lines }
}

t.test('a query token never reaches the log; the redacted url does (injectWS and a real port)', async (t) => {
  const { app, lines } = await loggedApp(t)
  await app.ready()
  const good = sign(app, 'alice')
  const ws = await app.injectWS(`/rt?token=${good}`)
  ws.terminate()

  const url = await listen(app)
  const real = await connect(`${url}/rt?room=lobby&token=${good}&x=1`)
  real.ws.close()
  const expired = sign(app, 'bob', { exp: Math.floor(Date.now() / 1000) - 10 })
  t.equal((await refusal(`${url}/rt?token=${expired}`)).statusCode, 401)
  const notYet = sign(app, 'carol', { nbf: Math.floor(Date.now() / 1000) + 600 })
  await t.rejects(app.injectWS(`/rt?token=${notYet}`), { message: 'Unexpected server response: 401' })
  await until(() => app.realtime.connections().length === 0)
  await app.close()

  const all = lines.join('\n')
  t.ok(lines.length > 4, 'trace logging produced lines')
  for (const token of [good, expired, notYet]) {
    t.notOk(all.includes(token), 'the token is in no log line')
    // the signature alone is the secret part
    t.notOk(all.includes(token.split('.')[2]), 'nor its signature')
  }
  t.ok(all.includes('"/rt?token=[REDACTED]"'), 'the path with the redacted token is logged')
  t.ok(all.includes('"/rt?room=lobby&token=[REDACTED]&x=1"'), 'other parameters are kept')
  const incoming = lines.map((line) => JSON.parse(line)).filter((entry) => entry.msg === 'incoming request')
  t.equal(incoming.length, 4, 'each upgrade logged its request')
  for (const entry of incoming) t.match(entry.req, { method: 'GET', url: /token=\[REDACTED\]/ })
  const refusedLog = lines.map((line) => JSON.parse(line)).find((entry) => entry.res?.statusCode === 401 && entry.err !== undefined)
  t.ok(refusedLog, 'the refused handshake is logged with its error')
})

t.test('a token under an encoded or differently written key is redacted too', async (t) => {
  const { app, lines } = await loggedApp(t)
  await app.ready()
  const token = sign(app, 'dave')
  const ws = await app.injectWS(`/rt?tok%65n=${token}`)
  t.equal(app.realtime.connections()[0].user.sub, 'dave', 'the query parser decodes the key: this is the token')
  ws.terminate()
  await until(() => app.realtime.connections().length === 0)
  await t.rejects(app.injectWS('/rt?TOKEN=secret-upper&token='), { message: 'Unexpected server response: 401' })
  await app.close()
  const all = lines.join('\n')
  t.notOk(all.includes(token), 'the token is in no log line')
  t.notOk(all.includes('secret-upper'))
  t.ok(all.includes('/rt?tok%65n=[REDACTED]'))
})

t.test('tokens in headers are never logged either', async (t) => {
  const { app, lines } = await loggedApp(t)
  const url = await listen(app)
  const header = sign(app, 'erin')
  const protocol = sign(app, 'frank')
  const a = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${header}` } })
  const b = await connect(`${url}/rt`, {}, ['bearer', protocol])
  t.equal((await refusal(`${url}/rt`, { headers: { authorization: 'Bearer not.a.jwt-secret' } })).statusCode, 401)
  a.ws.close()
  b.ws.close()
  await until(() => app.realtime.connections().length === 0)
  await app.close()
  const all = lines.join('\n')
  for (const secret of [header, protocol, 'not.a.jwt-secret']) t.notOk(all.includes(secret))
})

t.test('redactUrl', async (t) => {
  t.equal(redactUrl('/rt'), '/rt', 'no query')
  t.equal(redactUrl('/rt?'), '/rt?')
  t.equal(redactUrl('/rt?token=abc'), '/rt?token=[REDACTED]')
  t.equal(redactUrl('/rt?a=1&token=abc&b=2'), '/rt?a=1&token=[REDACTED]&b=2')
  t.equal(redactUrl('/rt?token=a&token=b'), '/rt?token=[REDACTED]&token=[REDACTED]', 'every occurrence')
  t.equal(redactUrl('/rt?token='), '/rt?token=[REDACTED]')
  t.equal(redactUrl('/rt?token'), '/rt?token=[REDACTED]', 'a key with no value')
  t.equal(redactUrl('/rt?Token=abc'), '/rt?Token=[REDACTED]', 'any case')
  t.equal(redactUrl('/rt?%74oken=abc'), '/rt?%74oken=[REDACTED]', 'an encoded key')
  t.equal(redactUrl('/rt?tok%65n=abc'), '/rt?tok%65n=[REDACTED]')
  t.equal(redactUrl('/rt?mytoken=abc&token2=def'), '/rt?mytoken=abc&token2=def', 'other keys that merely contain the word')
  t.equal(redactUrl('/rt?to+ken=abc'), '/rt?to+ken=abc', "'+' is a space, so this is another key")
  t.equal(redactUrl('/rt?%zz=1&token=abc'), '/rt?%zz=1&token=[REDACTED]', 'a malformed escape elsewhere does not stop it')
  t.equal(redactUrl('/rt?token=a=b=c'), '/rt?token=[REDACTED]', 'a value holding "="')
})

t.test('redactedRequest keeps Fastify\'s request fields and redacts the url', async (t) => {
  const request: any = {
    method: 'GET',
    url: '/rt?token=abc',
    headers: { host: 'api.example.com', authorization: 'Bearer abc' },
    raw: { socket: { remoteAddress: '127.0.0.1', remotePort: 5555 } }
  }
  t.same(redactedRequest(request), { method: 'GET', url: '/rt?token=[REDACTED]', host: 'api.example.com', remoteAddress: '127.0.0.1', remotePort: 5555 })
  t.same(redactedRequest({ ...request, raw: {} }), { method: 'GET', url: '/rt?token=[REDACTED]', host: 'api.example.com', remoteAddress: undefined, remotePort: undefined },
    'an injected request has no socket')
})

t.test('a protocol error is logged at debug with its connection\'s logger, the socket closed with its code; others go on', async (t) => {
  const { app, lines } = await loggedApp(t)
  const url = await listen(app)
  const bad = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'bad')}` } })
  const good = await connect(`${url}/rt`, { headers: { authorization: `Bearer ${sign(app, 'good')}` } })
  const done = new Promise<number>((resolve) => bad.ws.once('close', (code) => resolve(code)))
  bad.ws.send(Buffer.from([0xc3, 0x28]), { binary: false }) // invalid UTF-8
  t.equal(await done, 1007)
  await until(() => lines.some((line) => line.includes('fastify-realtime: websocket error')))
  const entry = JSON.parse(lines.find((line) => line.includes('fastify-realtime: websocket error')) as string)
  t.equal(entry.level, 20, 'debug, not error: the client sent a bad frame')
  t.match(entry.err, { code: 'WS_ERR_INVALID_UTF8' })
  t.ok(typeof entry.reqId === 'string', 'logged with the connection\'s request logger')
  t.notOk(lines.some((line) => JSON.parse(line).level >= 50), 'nothing at error level')
  good.send({ type: 'ping' })
  t.same(await good.type('pong'), { type: 'pong' }, 'the other connection still answers')
  good.ws.close()
})
