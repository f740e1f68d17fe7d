import t from 'tap'
import { Type } from '@sinclair/typebox'
import { build, inject, sign } from './helpers.js'

t.test('smoke', async (t) => {
  const app = await build(t, {
    routes: [{
      path: '/chat',
      messages: {
        'chat.send': {
          schema: Type.Object({ text: Type.String({ minLength: 1 }) }),
          handler (conn, data, msg) {
            conn.broadcast(msg.room!, 'chat.message', { from: conn.user.sub, text: data.text })
            return { ok: true }
          }
        }
      }
    }]
  })
  await app.ready()
  const a = await inject(app, '/chat', sign(app, 'alice'))
  const b = await inject(app, '/chat', sign(app, 'bob'))
  t.same(await a.request({ type: 'join', room: 'r', id: 1 }), { type: 'ack', id: 1, data: { room: 'r' } })
  t.same(await b.request({ type: 'join', room: 'r', id: 1 }), { type: 'ack', id: 1, data: { room: 'r' } })
  t.same(await a.request({ type: 'chat.send', room: 'r', id: 2, data: { text: 'hi' } }), { type: 'ack', id: 2, data: { ok: true } })
  t.same(await b.type('chat.message'), { type: 'chat.message', room: 'r', data: { from: 'alice', text: 'hi' } })
  t.same(await a.request({ type: 'chat.send', room: 'r', id: 3, data: { text: '' } }).then((m) => m.code), 'INVALID_MESSAGE')
  a.ws.close(); b.ws.close()
})
