// The example chat (example-app/): its REST routes, its realtime route through
// the built client, its static page, and `server.js` serving HTTPS/wss with
// a self-signed certificate made here with openssl.
import { test } from 'tap'
import { execFileSync, spawn } from 'node:child_process'
import { once } from 'node:events'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { request as httpsRequest } from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { build, ROOMS } from '../example-app/app.js'
import { createClient, type RealtimeClient } from 'fastify-realtime/client'
import { Parser } from '@asyncapi/parser'
import { createRequire } from 'node:module'

const root = fileURLToPath(new URL('..', import.meta.url))
const SECRET = 'example-app-test-secret-of-32-characters-or-more'

if (!existsSync(join(root, 'dist/esm/client/index.js'))) {
  throw new Error('dist/ is not built: run `npm run build` first (npm test does)')
}

async function next (client: RealtimeClient, type: string, ms = 3000): Promise<any> {
  return await new Promise((resolve, reject) => {
    const timer = setTimeout(() => { off(); reject(new Error(`no ${type} within ${ms} ms`)) }, ms)
    const off = client.on(type, (data: unknown) => { clearTimeout(timer); off(); resolve(data) })
  })
}

async function started (t: any) {
  const app = await build({ jwtSecret: SECRET })
  t.after(() => app.close())
  const address = await app.listen({ port: 0, host: '127.0.0.1' })
  return { app, base: address, ws: address.replace('http://', 'ws://') }
}

async function login (app: any, name: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/login', payload: { name } })
  if (res.statusCode !== 200) throw new Error(`login ${res.statusCode}`)
  return res.json().token
}

function chatClient (t: any, url: string, token: string): RealtimeClient {
  const client = createClient(url, { token, heartbeat: false, reconnect: { base: 10, cap: 50 } })
  t.after(() => client.close())
  return client
}

test('POST /login validates the name and issues a JWT for it', async (t) => {
  const app = await build({ jwtSecret: SECRET })
  t.after(() => app.close())
  const ok = await app.inject({ method: 'POST', url: '/login', payload: { name: 'alice' } })
  t.equal(ok.statusCode, 200)
  const claims = (app as any).jwt.verify(ok.json().token)
  t.equal(claims.sub, 'alice')
  t.ok(claims.exp > Date.now() / 1000, 'the token expires')
  for (const payload of [{}, { name: '' }, { name: '<img src=x>' }, { name: 'a'.repeat(25) }, { name: ['a', 'b'] }]) {
    const res = await app.inject({ method: 'POST', url: '/login', payload })
    t.equal(res.statusCode, 400, `refused: ${JSON.stringify(payload)}`)
  }
  // Fastify strips properties the schema does not list: no claim can be smuggled in
  const smuggled = await app.inject({ method: 'POST', url: '/login', payload: { name: 'bob', admin: true } })
  t.equal(smuggled.statusCode, 200)
  t.equal((app as any).jwt.verify(smuggled.json().token).admin, undefined)
  await t.rejects(build({ jwtSecret: 'short' }), /jwtSecret/)
})

test('two users chat in a room; members, refusals and GET /rooms', async (t) => {
  const { app, ws } = await started(t)
  const alice = chatClient(t, `${ws}/chat`, await login(app, 'alice'))
  const bob = chatClient(t, `${ws}/chat`, await login(app, 'bob'))

  t.same((await alice.join('general')).members?.map((m) => m.sub), ['alice'])
  const sawBob = next(alice, 'presence')
  t.same((await bob.join('general')).members?.map((m) => m.sub).sort(), ['alice', 'bob'], 'presence: the join ack lists members')
  t.equal((await sawBob).member.sub, 'bob')

  const toBob = next(bob, 'chat.message')
  t.same(await alice.request('chat.send', { text: 'hi bob' }, { room: 'general' }), { ok: true })
  const got = await toBob
  t.equal(got.from, 'alice')
  t.equal(got.text, 'hi bob')
  t.type(got.at, 'number')
  const toAlice = next(alice, 'chat.message')
  bob.send('chat.send', { text: 'hi alice' }, 'general')
  t.equal((await toAlice).text, 'hi alice')

  const rooms = await app.inject({ method: 'GET', url: '/rooms' })
  t.same(rooms.json(), { rooms: ROOMS.map((name) => ({ name, members: name === 'general' ? 2 : 0 })) })

  t.equal(await alice.request('chat.send', { text: 'x' }, { room: 'dev' }).catch((err) => err.code), 'NOT_IN_ROOM')
  t.equal(await alice.request('chat.send', { text: 'x' }).catch((err) => err.code), 'ROOM_REQUIRED')
  t.equal(await alice.request('chat.send', { text: '' }, { room: 'general' }).catch((err) => err.code), 'INVALID_MESSAGE')
  t.equal(await alice.join('secret').catch((err) => err.code), 'FORBIDDEN', 'only the listed rooms')
})

test('POST /announce needs a token and broadcasts to the room', async (t) => {
  const { app, ws } = await started(t)
  const token = await login(app, 'carol')
  const carol = chatClient(t, `${ws}/chat`, token)
  await carol.join('random')

  const anonymous = await app.inject({ method: 'POST', url: '/announce', payload: { room: 'random', text: 'hello' } })
  t.equal(anonymous.statusCode, 401)
  const forged = await app.inject({ method: 'POST', url: '/announce', headers: { authorization: 'Bearer nope' }, payload: { room: 'random', text: 'hello' } })
  t.equal(forged.statusCode, 401)
  const missing = await app.inject({ method: 'POST', url: '/announce', headers: { authorization: `Bearer ${token}` }, payload: { room: 'nowhere', text: 'hello' } })
  t.equal(missing.statusCode, 404)

  const heard = next(carol, 'chat.announcement')
  const ok = await app.inject({ method: 'POST', url: '/announce', headers: { authorization: `Bearer ${token}` }, payload: { room: 'random', text: 'lunch at noon' } })
  t.equal(ok.statusCode, 200)
  const announcement = await heard
  t.equal(announcement.from, 'carol')
  t.equal(announcement.text, 'lunch at noon')
})

test('the static page, its script and the built client are served', async (t) => {
  const app = await build({ jwtSecret: SECRET })
  t.after(() => app.close())
  const page = await app.inject({ url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /<script type="module" src="\/app.js"><\/script>/)
  const script = await app.inject({ url: '/app.js' })
  t.equal(script.statusCode, 200)
  t.match(script.body, /from '\/client\/index.js'/)
  const client = await app.inject({ url: '/client/index.js' })
  t.equal(client.statusCode, 200)
  t.match(client.headers['content-type'], /javascript/)
  t.match(client.body, /export function createClient/)
  for (const file of ['client.js', 'transport.js', 'backoff.js', 'error.js']) {
    t.equal((await app.inject({ url: `/client/${file}` })).statusCode, 200, `the client's module ${file}`)
  }
  // the page must never turn user text into markup
  t.notMatch(script.body, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/)
})

test('GET /asyncapi.json: the AsyncAPI 3.0.0 document of /chat, valid; /asyncapi.html renders it', async (t) => {
  const app = await build({ jwtSecret: SECRET })
  t.after(() => app.close())
  const res = await app.inject({ url: '/asyncapi.json' })
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /application\/json/)
  const doc = res.json()
  t.equal(doc.asyncapi, '3.0.0')
  t.equal(doc.info.title, 'Team chat')
  t.same(Object.keys(doc.channels), ['chat'])
  t.same(doc.channels.chat.messages['ack.chat.send'].payload.properties.data, { type: 'object', required: ['ok'], properties: { ok: { const: true, type: 'boolean' } } })
  t.ok(doc.channels.chat.messages['chat.message'] && doc.channels.chat.messages['chat.announcement'], 'what the server sends')
  t.ok(doc.operations['chat.send.presence'], 'presence is on')
  const diagnostics = await new Parser().validate(res.body)
  t.same(diagnostics.filter((d) => d.severity === 0), [], `no error from @asyncapi/parser (${res.body.length} bytes)`)

  const page = await app.inject({ url: '/asyncapi.html' })
  t.equal(page.statusCode, 200)
  t.match(page.body, /AsyncApiStandalone\.render/)
  let viewer: string | undefined
  try {
    viewer = createRequire(import.meta.url).resolve('@asyncapi/react-component/package.json')
  } catch {}
  if (viewer === undefined) {
    t.comment('@asyncapi/react-component is not installed (npm install): the page says so instead')
    return
  }
  const bundle = await app.inject({ url: '/asyncapi-viewer/browser/standalone/index.js' })
  t.equal(bundle.statusCode, 200, 'the viewer bundle is served')
  t.equal((await app.inject({ url: '/asyncapi-viewer/styles/default.min.css' })).statusCode, 200, 'and its styles')
})

function httpsPost (url: string, body: unknown): Promise<{ status: number, json: any }> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(url, { method: 'POST', rejectUnauthorized: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let text = ''
      res.on('data', (chunk) => { text += chunk })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) }))
    })
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

test('server.js with TLS_KEY and TLS_CERT serves HTTPS and wss://', async (t) => {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' })
  } catch {
    if (process.env.CI === 'true') t.fail('openssl is required under CI')
    else t.plan(0, 'openssl is not installed')
    return
  }
  const dir = mkdtempSync(join(tmpdir(), 'realtime-tls-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const key = join(dir, 'key.pem')
  const cert = join(dir, 'cert.pem')
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert,
    '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' })
  t.match(readFileSync(cert, 'utf8'), /BEGIN CERTIFICATE/)

  const env: Record<string, string | undefined> = { ...process.env, TLS_KEY: key, TLS_CERT: cert, PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'warn' }
  delete env.JWT_SECRET
  const child = spawn(process.execPath, [join(root, 'example-app/server.js')], { env, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(async () => {
    if (child.exitCode === null) {
      child.kill('SIGTERM')
      await once(child, 'exit')
    }
  })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server.js did not start: ${stdout} ${stderr}`)), 15_000)
    child.stdout.on('data', (chunk) => {
      stdout += chunk
      const match = /listening on (https:\/\/\S+)/.exec(stdout)
      if (match !== null) {
        clearTimeout(timer)
        resolve(match[1])
      }
    })
    child.once('exit', (code) => reject(new Error(`server.js exited with ${code}: ${stderr}`)))
  })
  t.match(address, /^https:\/\/127\.0\.0\.1:\d+$/)
  t.match(stderr, /JWT_SECRET is not set/, 'a random secret is announced')

  const { status, json } = await httpsPost(`${address}/login`, { name: 'dana' })
  t.equal(status, 200)
  const client = createClient(`${address.replace('https://', 'wss://')}/chat`, {
    token: json.token, heartbeat: false, reconnect: false, wsOptions: { rejectUnauthorized: false }
  })
  t.after(() => client.close())
  await client.join('general')
  const echoed = next(client, 'chat.message')
  t.same(await client.request('chat.send', { text: 'over TLS' }, { room: 'general' }), { ok: true })
  t.same((await echoed).text, 'over TLS')

  // plain ws:// to the TLS port is not a WebSocket server
  const plain = createClient(`${address.replace('https://', 'ws://')}/chat`, { token: json.token, heartbeat: false, reconnect: false })
  t.after(() => plain.close())
  t.equal((await next(plain, 'error')).code, 'CONNECT_FAILED')
})

test('server.js refuses half a TLS configuration', async (t) => {
  const env: Record<string, string | undefined> = { ...process.env, TLS_KEY: '/nonexistent/key.pem', PORT: '0', JWT_SECRET: SECRET }
  delete env.TLS_CERT
  const child = spawn(process.execPath, [join(root, 'example-app/server.js')], { env, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (chunk) => { stderr += chunk })
  const [code] = await once(child, 'exit')
  t.equal(code, 1)
  t.match(stderr, /set both TLS_KEY and TLS_CERT/)
})
