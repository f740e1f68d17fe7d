// Hand-written servers on `ws`, speaking the same JSON envelopes as the plugin
// (join with ack, publish to a room the sender is in, delivered to the other
// members). Only the delivery loop differs between the three variants:
//   loop       ws.send(string) to each member: one frame built per recipient
//   corked     the same ws.send, each socket corked until the end of the turn
//   preframed  one frame built per broadcast, written to every corked socket
//   batched    (not in the default run) one frame per broadcast, each socket's frames
//              of the turn held and joined into one write (fastify-realtime's way, joined per socket)
import { createServer } from 'node:http'
import { Sender, WebSocketServer } from 'ws'
import { MAX_PAYLOAD, WS_PATH } from '../lib/protocol.js'

const FRAME_OPTIONS = { fin: true, opcode: 0x01, mask: false, readOnly: false, rsv1: false }

function deliverLoop (members, except, payload) {
  for (const member of members) {
    if (member !== except && member.ws.readyState === 1) member.ws.send(payload)
  }
}

/** Corks a socket at its first write of a turn; one setImmediate uncorks them all. */
class TurnCorker {
  #corked = []
  #scheduled = false
  #flush = () => {
    this.#scheduled = false
    const corked = this.#corked
    this.#corked = []
    for (let i = 0; i < corked.length; i++) {
      corked[i].corked = false
      corked[i].socket.uncork()
    }
  }

  cork (member) {
    if (member.corked) return
    member.corked = true
    member.socket.cork()
    this.#corked.push(member)
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(this.#flush)
    }
  }
}

function corkedDelivery (corker) {
  return function deliverCorked (members, except, payload) {
    for (const member of members) {
      if (member === except || member.ws.readyState !== 1) continue
      corker.cork(member)
      member.ws.send(payload)
    }
  }
}

function preframedDelivery (corker) {
  return function deliverPreframed (members, except, payload) {
    const frame = Buffer.concat(Sender.frame(Buffer.from(payload), FRAME_OPTIONS))
    for (const member of members) {
      if (member === except || member.ws.readyState !== 1) continue
      corker.cork(member)
      member.socket.write(frame)
    }
  }
}

/** Keeps each socket's frames of the turn and writes them as one buffer at its end. */
class TurnBatcher {
  #pending = []
  #scheduled = false
  #flush = () => {
    this.#scheduled = false
    const pending = this.#pending
    this.#pending = []
    for (let i = 0; i < pending.length; i++) {
      const member = pending[i]
      const frames = member.frames
      member.frames = null
      if (member.ws.readyState !== 1) continue
      member.socket.write(frames.length === 1 ? frames[0] : Buffer.concat(frames))
    }
  }

  add (member, frame) {
    if (member.frames === null) {
      member.frames = [frame]
      this.#pending.push(member)
      if (!this.#scheduled) {
        this.#scheduled = true
        setImmediate(this.#flush)
      }
    } else {
      member.frames.push(frame)
    }
  }
}

function batchedDelivery (batcher) {
  return function deliverBatched (members, except, payload) {
    const frame = Buffer.concat(Sender.frame(Buffer.from(payload), FRAME_OPTIONS))
    for (const member of members) {
      if (member !== except && member.ws.readyState === 1) batcher.add(member, frame)
    }
  }
}

const DELIVERIES = {
  loop: () => deliverLoop,
  corked: () => corkedDelivery(new TurnCorker()),
  preframed: () => preframedDelivery(new TurnCorker()),
  batched: () => batchedDelivery(new TurnBatcher())
}

function ack (ws, id, room) {
  if (id !== undefined) ws.send(JSON.stringify({ type: 'ack', id, data: { room } }))
}

/**
 * The rooms and the message handling every raw server shares: returns the
 * handler for one new socket (`socket` is its TCP socket).
 */
export function roomServer (mode) {
  const deliver = DELIVERIES[mode]()
  const rooms = new Map()
  return function onConnection (ws, socket) {
    const member = { ws, socket, corked: false, frames: null, rooms: new Set() }
    ws.on('message', (raw, isBinary) => {
      if (isBinary) return
      let msg
      try {
        msg = JSON.parse(raw.toString())
      } catch {
        return
      }
      const room = msg?.room
      if (typeof room !== 'string') return
      if (msg.type === 'join') {
        let members = rooms.get(room)
        if (members === undefined) rooms.set(room, (members = new Set()))
        members.add(member)
        member.rooms.add(room)
        ack(ws, msg.id, room)
      } else if (msg.type === 'publish' && member.rooms.has(room)) {
        deliver(rooms.get(room), member, JSON.stringify({ type: 'message', room, data: msg.data }))
      }
    })
    ws.on('close', () => {
      for (const room of member.rooms) {
        const members = rooms.get(room)
        members.delete(member)
        if (members.size === 0) rooms.delete(room)
      }
    })
  }
}

export function variant (mode) {
  return {
    async start () {
      const onConnection = roomServer(mode)
      const http = createServer()
      const wss = new WebSocketServer({ server: http, path: WS_PATH, perMessageDeflate: false, maxPayload: MAX_PAYLOAD })
      wss.on('connection', (ws, request) => onConnection(ws, request.socket))
      await new Promise((resolve) => http.listen(0, '127.0.0.1', resolve))
      return {
        port: http.address().port,
        path: WS_PATH,
        connections: () => wss.clients.size,
        close: () => new Promise((resolve) => {
          for (const ws of wss.clients) ws.terminate()
          wss.close(() => http.close(() => resolve()))
        })
      }
    }
  }
}
