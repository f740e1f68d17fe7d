// The chat page. Every piece of user text goes into the DOM with textContent,
// never parsed as HTML: a message is shown as text, whatever it contains.
// Rooms keep history on the server: opening a room shows its last messages, a
// message you send shows as pending until the server acks it (or as failed,
// with the server's reason), and a reconnect says what it caught up on.
import { createClient } from '/client/index.js'

const $ = (id) => document.getElementById(id)
const status = $('status')
let client
let me
let currentRoom
let firstOpen = true
/** how many messages a room shows when opened or reloaded */
const HISTORY = 50
/** offsets shown in the current room: a message replayed twice is shown once */
let shownOffsets = new Set()
/** room -> the <li> of each message sent and not yet acked (or refused) */
const outbox = new Map()
/** after a reconnect, until the re-join of the current room is answered: { room, count, resynced } */
let catchUp
/** sub -> connections, for the current room */
let members = new Map()

async function login (name) {
  const res = await fetch('/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name })
  })
  const body = await res.json()
  if (!res.ok) throw new Error(body.message ?? `login failed (${res.status})`)
  return body.token
}

function setStatus (state, text) {
  status.dataset.state = state
  status.textContent = text
}

function makeLine (parts, className) {
  const li = document.createElement('li')
  if (className) li.className = className
  for (const [cls, text] of parts) {
    const span = document.createElement('span')
    span.className = cls
    span.textContent = text
    li.append(span)
  }
  return li
}

/** Add a line above the messages still waiting for their ack. */
function addLine (parts, className) {
  const li = makeLine(parts, className)
  const list = $('messages')
  list.insertBefore(li, list.querySelector(':scope > li.pending, :scope > li.failed'))
  list.scrollTop = list.scrollHeight
  return li
}

/** Empty the message list for `room`, keeping the messages of its outbox at the end. */
function clearMessages (room) {
  shownOffsets = new Set()
  $('messages').replaceChildren(...(outbox.get(room) ?? []))
}

/** A room message (chat or announcement); one with an offset already shown is skipped. */
function showMessage (msg, parts, className) {
  if (msg.room !== currentRoom) return
  if (typeof msg.offset === 'number') {
    if (shownOffsets.has(msg.offset)) return
    shownOffsets.add(msg.offset)
    if (catchUp !== undefined && catchUp.room === msg.room) catchUp.count++
  }
  addLine(parts, className)
}

function renderMembers () {
  const list = $('members')
  list.replaceChildren()
  for (const sub of [...members.keys()].sort()) {
    const li = document.createElement('li')
    li.textContent = sub === me ? `${sub} (you)` : sub
    list.append(li)
  }
}

function setMembers (list) {
  members = new Map()
  for (const { sub } of list ?? []) members.set(sub, (members.get(sub) ?? 0) + 1)
  renderMembers()
}

async function renderRooms () {
  const res = await fetch('/rooms')
  const { rooms } = await res.json()
  const list = $('rooms')
  list.replaceChildren()
  for (const room of rooms) {
    const li = document.createElement('li')
    const button = document.createElement('button')
    button.type = 'button'
    button.dataset.room = room.name
    button.textContent = `# ${room.name}`
    button.setAttribute('aria-current', String(room.name === currentRoom))
    button.addEventListener('click', () => { switchRoom(room.name).catch(showError) })
    li.append(button)
    list.append(li)
  }
}

async function switchRoom (room) {
  if (room === currentRoom) return
  const previous = currentRoom
  currentRoom = room
  $('room-title').textContent = `# ${room}`
  clearMessages(room)
  for (const button of $('rooms').querySelectorAll('button')) {
    button.setAttribute('aria-current', String(button.dataset.room === room))
  }
  if (previous !== undefined) await client.leave(previous)
  // the last HISTORY messages arrive first, as ordinary room messages, then the ack
  const ack = await client.join(room, { history: HISTORY })
  if (currentRoom !== room) return
  setMembers(ack.members)
  addLine([['text', `you joined #${room}`]], 'system')
}

/** The server could not replay what this page missed in `room`: show its last messages again. */
async function reloadRoom (room, notice) {
  if (room !== currentRoom) return
  clearMessages(room)
  const ack = await client.join(room, { history: HISTORY })
  if (currentRoom !== room) return
  setMembers(ack.members)
  addLine([['text', notice]], 'system')
}

/** Send `text` to the current room: pending until acked, then the room's copy shows; failed with the reason if refused. */
function sendMessage (text) {
  const room = currentRoom
  const li = makeLine([['from', me], ['text', text], ['status', 'sending…']], 'pending')
  if (!outbox.has(room)) outbox.set(room, new Set())
  outbox.get(room).add(li)
  const list = $('messages')
  list.append(li)
  list.scrollTop = list.scrollHeight
  // sent now, or queued while offline and sent after the re-join; the server's
  // copy (chat.message) arrives before the ack, so the message never vanishes
  client.request('chat.send', { text }, { room, timeout: 60_000 }).then(() => {
    outbox.get(room)?.delete(li)
    li.remove()
  }, (err) => {
    li.className = 'failed'
    // the server's reason; for a schema refusal its first detail says what (e.g. too long)
    const detail = Array.isArray(err.details) && typeof err.details[0]?.message === 'string'
      ? `: ${err.details[0].path ?? ''} ${err.details[0].message}`
      : ''
    li.querySelector('.status').textContent = `not sent: ${err.message}${detail}${err.code ? ` (${err.code})` : ''}`
    const dismiss = document.createElement('button')
    dismiss.type = 'button'
    dismiss.className = 'dismiss'
    dismiss.textContent = '×'
    dismiss.setAttribute('aria-label', 'dismiss')
    dismiss.addEventListener('click', () => { outbox.get(room)?.delete(li); li.remove() })
    li.append(dismiss)
  })
}

function showError (err) {
  addLine([['text', `error: ${err.code ?? ''} ${err.message}`]], 'system')
}

function connect (token) {
  let fresh = token
  client = createClient('/chat', {
    // the first attempt uses the login token; later ones log in again, so a
    // server restart with a new secret, or an expired token, heals by itself
    getToken: async () => {
      if (fresh !== undefined) {
        const t = fresh
        fresh = undefined
        return t
      }
      return await login(me)
    }
  })
  setStatus('connecting', 'connecting…')
  client.on('open', () => {
    setStatus('open', 'online')
    if (firstOpen) {
      firstOpen = false
      return
    }
    // the client re-joins by itself, with `since`: the messages missed meanwhile
    // arrive before its ack, which also answers this join (and says who is here)
    const room = currentRoom
    if (room !== undefined) {
      const pass = catchUp = { room, count: 0, resynced: false }
      client.join(room).then((ack) => {
        if (catchUp === pass) catchUp = undefined
        if (ack.room !== currentRoom || pass.resynced) return
        setMembers(ack.members)
        const n = pass.count
        addLine([['text', `reconnected: caught up on ${n} message${n === 1 ? '' : 's'}`]], 'system catch-up')
      }, showError)
    } else {
      addLine([['text', 'reconnected']], 'system')
    }
    renderRooms().catch(() => {})
  })
  // the server lost (part of) the room's history: what it shows may have gaps, so reload it
  client.on('resync', ({ room }) => {
    if (room !== currentRoom) return
    const afterReconnect = catchUp !== undefined && catchUp.room === room
    if (afterReconnect) catchUp.resynced = true
    const notice = afterReconnect
      ? `reconnected: some messages could not be recovered, #${room} reloaded`
      : `some messages could not be recovered, #${room} reloaded`
    reloadRoom(room, notice).catch(showError)
  })
  client.on('close', () => setStatus('reconnecting', 'offline'))
  client.on('reconnecting', ({ attempt, delay }) => {
    setStatus('reconnecting', `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})`)
  })
  client.on('error', (err) => {
    if (client.state === 'closed') setStatus('closed', `disconnected: ${err.code}`)
  })
  client.on('chat.message', (data, msg) => {
    showMessage(msg, [['from', data.from], ['text', data.text]])
  })
  client.on('chat.announcement', (data, msg) => {
    showMessage(msg, [['from', `📣 ${data.from}`], ['text', data.text]], 'announcement')
  })
  client.on('presence', (data, msg) => {
    if (msg.room !== currentRoom) return
    const sub = data.member.sub
    const count = members.get(sub) ?? 0
    if (data.event === 'join') members.set(sub, count + 1)
    else if (count <= 1) members.delete(sub)
    else members.set(sub, count - 1)
    renderMembers()
  })
}

$('login').addEventListener('submit', async (event) => {
  event.preventDefault()
  const name = $('name').value.trim()
  $('login-error').textContent = ''
  try {
    const token = await login(name)
    me = name
    $('me').textContent = name
    $('login').hidden = true
    $('chat').hidden = false
    connect(token)
    await renderRooms()
    await switchRoom('general')
    $('text').focus()
  } catch (err) {
    $('login-error').textContent = err.message
  }
})

$('send').addEventListener('submit', (event) => {
  event.preventDefault()
  const input = $('text')
  const text = input.value
  if (text.trim() === '' || currentRoom === undefined) return
  sendMessage(text)
  input.value = ''
})
