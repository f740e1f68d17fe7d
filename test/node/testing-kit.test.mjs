// The test kit under node:test, as an app's own tests would use it: the built
// package (`npm run build` first; `npm test` does), plain JavaScript, no tap.
// Run by `npm run test:node` (part of `npm test`).
import { test } from 'node:test'
import assert from 'node:assert/strict'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import { Type } from '@sinclair/typebox'
import realtime, { defineRoute } from 'fastify-realtime'
import { connect } from 'fastify-realtime/testing'

const chat = defineRoute({
  path: '/chat',
  emits: { 'chat.message': Type.Object({ from: Type.String(), text: Type.String() }) },
  messages: {
    'chat.send': {
      schema: Type.Object({ text: Type.String({ minLength: 1 }) }),
      ack: Type.Object({ ok: Type.Boolean() }),
      handler (conn, data, msg) {
        conn.broadcast(msg.room, 'chat.message', { from: conn.sub, text: data.text })
        return { ok: true }
      }
    }
  }
})

async function buildApp (t) {
  const app = Fastify()
  t.after(() => app.close())
  await app.register(jwt, { secret: 'a-secret-of-at-least-32-characters-for-hs256' })
  await app.register(realtime, { routes: [chat], heartbeat: false })
  await app.ready()
  return app
}

test('two users chat through the test kit', async (t) => {
  const app = await buildApp(t)
  const alice = await connect(app, '/chat', { user: { sub: 'alice' } })
  const bob = await connect(app, '/chat', { user: { sub: 'bob' } })
  t.after(() => Promise.all([alice.close(), bob.close()]))

  assert.deepEqual(await alice.join('lobby'), { room: 'lobby' })
  await bob.join('lobby')
  assert.deepEqual(await bob.request('chat.send', { text: 'hi' }, { room: 'lobby' }), { ok: true })
  const message = await alice.next('chat.message')
  assert.deepEqual(message, { type: 'chat.message', room: 'lobby', data: { from: 'bob', text: 'hi' } })
  assert.deepEqual((await bob.next('chat.message')).data.from, 'bob', 'the sender is a member too')
})

test('rejections are Errors with the server code or TIMEOUT', async (t) => {
  const app = await buildApp(t)
  const alice = await connect(app, '/chat', { user: { sub: 'alice' }, timeout: 100 })
  t.after(() => alice.close())
  await assert.rejects(alice.request('chat.send', { text: '' }), (err) => {
    assert.ok(err instanceof Error)
    assert.equal(err.code, 'INVALID_MESSAGE')
    assert.equal(err.details[0].path, '/text')
    return true
  })
  await assert.rejects(alice.leave('nowhere'), { code: 'NOT_IN_ROOM' })
  await assert.rejects(alice.next('chat.message'), { code: 'TIMEOUT' })
})
