import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { isOriginAllowed } from '../lib/origin.js'
import type { RealtimeOptions } from '../lib/index.js'
import { build, connect, listen, sign, hub } from './helpers.js'
import { refusal, until } from './support/upgrade.js'

const ROUTES = [{ path: '/rt' }]

async function app (t: Parameters<typeof build>[0], opts: RealtimeOptions = {}, server = {}): Promise<FastifyInstance> {
  const instance = await build(t, { routes: ROUTES, ...opts }, server)
  await instance.ready()
  return instance
}

/** Upgrade through injectWS with these headers and a valid token; resolves to the status (101 when it opened). */
async function injectStatus (instance: FastifyInstance, headers: Record<string, string>): Promise<number> {
  try {
    const ws = await instance.injectWS('/rt', { headers: { authorization: `Bearer ${sign(instance, 'u')}`, ...headers } })
    ws.terminate()
    await until(() => instance.realtime.connections().length === 0)
    return 101
  } catch (err) {
    const match = /Unexpected server response: (\d+)/.exec((err as Error).message)
    if (match === null) throw err
    return Number(match[1])
  }
}

t.test('isOriginAllowed: the default rule compares the Origin host with the Host', async (t) => {
  t.equal(isOriginAllowed(undefined, 'a.com', undefined), true, 'no Origin: not a browser, let in')
  t.equal(isOriginAllowed('https://a.com', 'a.com', undefined), true)
  t.equal(isOriginAllowed('http://a.com:3000', 'a.com:3000', undefined), true)
  t.equal(isOriginAllowed('http://A.com:3000', 'a.COM:3000', undefined), true, 'host names are case-insensitive')
  t.equal(isOriginAllowed('https://a.com', 'a.com:443', undefined), true, 'a default port written out in Host')
  t.equal(isOriginAllowed('http://[::1]:3000', '[::1]:3000', undefined), true, 'IPv6')
  t.equal(isOriginAllowed('https://evil.com', 'a.com', undefined), false, 'another host')
  t.equal(isOriginAllowed('https://a.com.evil.com', 'a.com', undefined), false, 'a suffix trick')
  t.equal(isOriginAllowed('http://a.com:3001', 'a.com:3000', undefined), false, 'another port')
  t.equal(isOriginAllowed('https://a.com', 'a.com:80', undefined), false, 'https on port 80 is another origin')
  t.equal(isOriginAllowed('null', 'a.com', undefined), false, 'the opaque origin of sandboxed frames and files')
  t.equal(isOriginAllowed('not a url', 'a.com', undefined), false, 'malformed')
  t.equal(isOriginAllowed('file://', 'a.com', undefined), false, 'an origin with no host')
  t.equal(isOriginAllowed('https://a.com', undefined, undefined), false, 'no Host to compare with')
  t.equal(isOriginAllowed('https://a.com', '', undefined), false, 'an empty Host')
  t.equal(isOriginAllowed('https://a.com', 'bad host name', undefined), false, 'a Host that is no host')
})

t.test('isOriginAllowed: "*", an array and a function', async (t) => {
  t.equal(isOriginAllowed('https://evil.com', 'a.com', '*'), true)
  t.equal(isOriginAllowed('garbage', 'a.com', '*'), true, "'*' lets any Origin in")
  const list = ['https://app.example.com', 'http://localhost:5173']
  t.equal(isOriginAllowed('https://app.example.com', 'api.example.com', list), true)
  t.equal(isOriginAllowed('http://localhost:5173', 'api.example.com', list), true)
  t.equal(isOriginAllowed('https://api.example.com', 'api.example.com', list), false, 'an array replaces the same-host rule')
  t.equal(isOriginAllowed('https://app.example.com:8443', 'api.example.com', list), false, 'origins match exactly')
  t.equal(isOriginAllowed('null', 'a.com', list), false)
  t.equal(isOriginAllowed(undefined, 'a.com', []), true, 'no Origin passes even an empty list')
  const seen: string[] = []
  const fn = (origin: string): boolean => { seen.push(origin); return origin.endsWith('.example.com') }
  t.equal(isOriginAllowed('https://x.example.com', 'a.com', fn), true)
  t.equal(isOriginAllowed('https://x.evil.com', 'a.com', fn), false)
  t.same(seen, ['https://x.example.com', 'https://x.evil.com'], 'the function gets the Origin as sent')
  t.equal(isOriginAllowed('https://a.com', 'a.com', (() => 'yes') as any), false, 'only a true return allows')
})

t.test('default: same host passes, another host is 403 with Fastify\'s JSON body, no Origin passes (injectWS)', async (t) => {
  const instance = await app(t)
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'https://api.example.com' }), 101)
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'https://evil.example.com' }), 403)
  t.equal(await injectStatus(instance, { host: 'api.example.com' }), 101, 'no Origin')
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'null' }), 403, 'opaque origin')
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: '::::' }), 403, 'malformed origin')
})

t.test('default over a real port: the ws client with and without an Origin', async (t) => {
  const instance = await app(t)
  const url = await listen(instance)
  const { port } = new URL(url)
  const authorization = `Bearer ${sign(instance, 'u')}`

  const same = await connect(`${url}/rt`, { origin: `http://127.0.0.1:${port}`, headers: { authorization } })
  t.equal(same.ws.readyState, 1, 'an Origin naming the Host gets in')
  same.ws.close()

  const cross = await refusal(`${url}/rt`, { origin: 'https://evil.example.com', headers: { authorization } })
  t.equal(cross.statusCode, 403)
  t.same(cross.body, { statusCode: 403, code: 'FST_REALTIME_ORIGIN_FORBIDDEN', error: 'Forbidden', message: 'Origin is not allowed' })

  const otherPort = await refusal(`${url}/rt`, { origin: `http://127.0.0.1:${Number(port) + 1}`, headers: { authorization } })
  t.equal(otherPort.statusCode, 403, 'same address, another port')

  const cli = await connect(`${url}/rt`, { headers: { authorization } })
  t.equal(cli.ws.readyState, 1, 'no Origin (a server or CLI) gets in')
  cli.ws.close()
})

t.test('the Origin is checked before the token, and a refused Origin holds no slot', async (t) => {
  const instance = await app(t, { maxConnections: 1 })
  const url = await listen(instance)
  const refused = await refusal(`${url}/rt`, { origin: 'https://evil.example.com' })
  t.equal(refused.statusCode, 403, '403, not 401, without a token')
  t.equal(hub(instance).limits.active, 0)
})

t.test("allowedOrigins: '*'", async (t) => {
  const instance = await app(t, { allowedOrigins: '*' })
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'https://evil.example.com' }), 101)
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'null' }), 101)
  const url = await listen(instance)
  const client = await connect(`${url}/rt`, { origin: 'https://anywhere.example', headers: { authorization: `Bearer ${sign(instance, 'u')}` } })
  t.equal(client.ws.readyState, 1)
  client.ws.close()
})

t.test('allowedOrigins: an array', async (t) => {
  const instance = await app(t, { allowedOrigins: ['https://app.example.com'] })
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'https://app.example.com' }), 101)
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'https://api.example.com' }), 403, 'not listed, even if same host')
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'https://app.example.com.evil.com' }), 403)
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: '%%%' }), 403, 'malformed')
  t.equal(await injectStatus(instance, { host: 'api.example.com' }), 101, 'no Origin')
  const url = await listen(instance)
  t.equal((await refusal(`${url}/rt`, { origin: 'https://evil.example.com', headers: { authorization: `Bearer ${sign(instance, 'u')}` } })).statusCode, 403)
  const listed = await connect(`${url}/rt`, { origin: 'https://app.example.com', headers: { authorization: `Bearer ${sign(instance, 'u')}` } })
  t.equal(listed.ws.readyState, 1)
  listed.ws.close()
})

t.test('allowedOrigins: a function', async (t) => {
  const asked: string[] = []
  const instance = await app(t, {
    allowedOrigins: (origin) => {
      asked.push(origin)
      return origin.startsWith('https://') && origin.endsWith('.example.com')
    }
  })
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'https://app.example.com' }), 101)
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'http://app.example.com' }), 403)
  t.equal(await injectStatus(instance, { host: 'api.example.com', origin: 'garbage' }), 403)
  t.equal(await injectStatus(instance, { host: 'api.example.com' }), 101, 'not asked when there is no Origin')
  t.same(asked, ['https://app.example.com', 'http://app.example.com', 'garbage'])
})

t.test('behind a trusted proxy the public host (X-Forwarded-Host) is the one compared', async (t) => {
  const trusting = await app(t, {}, { trustProxy: true })
  const url = await listen(trusting)
  const authorization = `Bearer ${sign(trusting, 'u')}`
  const client = await connect(`${url}/rt`, { origin: 'https://chat.example.com', headers: { authorization, 'x-forwarded-host': 'chat.example.com' } })
  t.equal(client.ws.readyState, 1)
  client.ws.close()

  const plain = await app(t)
  const plainUrl = await listen(plain)
  const refused = await refusal(`${plainUrl}/rt`, { origin: 'https://chat.example.com', headers: { authorization, 'x-forwarded-host': 'chat.example.com' } })
  t.equal(refused.statusCode, 403, 'an untrusted X-Forwarded-Host is ignored')
})
