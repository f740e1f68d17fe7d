// Socket.IO 4 with the websocket transport only and its own rooms; no auth.
// `socket.to(room)` broadcasts to the room without the sender, like the others.
import { createServer } from 'node:http'
import { Server } from 'socket.io'
import { MAX_PAYLOAD } from '../lib/protocol.js'

export async function start () {
  const http = createServer()
  const io = new Server(http, {
    transports: ['websocket'],
    serveClient: false,
    maxHttpBufferSize: MAX_PAYLOAD
  })
  io.on('connection', (socket) => {
    socket.on('join', (room, ack) => {
      if (typeof room !== 'string') return
      socket.join(room)
      if (typeof ack === 'function') ack({ room })
    })
    socket.on('publish', (room, data) => {
      if (typeof room === 'string' && socket.rooms.has(room)) socket.to(room).emit('message', room, data)
    })
  })
  await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve))
  return {
    port: http.address().port,
    path: '/socket.io/',
    connections: () => io.engine.clientsCount,
    close: () => new Promise((resolve) => io.close(() => resolve()))
  }
}
