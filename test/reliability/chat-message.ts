// The `chat.send` message the reliability suites chat with: a sequence number,
// broadcast to the room as `chat.message`; the ack is `ack(seq)`.
import { Type } from '@sinclair/typebox'
import { defineRoute } from '../../lib/index.js'

const ChatSend = Type.Object({ seq: Type.Integer() })

export function chatSend (ack: (seq: number) => unknown = () => ({ ok: true })) {
  return defineRoute({
    path: '/',
    messages: {
      'chat.send': {
        schema: ChatSend,
        handler (conn, data, msg) {
          conn.broadcast(msg.room as string, 'chat.message', { from: conn.user.sub, seq: data.seq })
          return ack(data.seq)
        }
      }
    }
  }).messages!['chat.send']
}
