// The chat page. Every piece of user text goes into the DOM with textContent,
// never parsed as HTML: a message is shown as text, whatever it contains.
import { createClient } from '/client/index.js'

const $ = (id) => document.getElementById(id)
const status = $('status')
let client
let me
let currentRoom
let firstOpen = true
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

function addLine (parts, className) {
  const li = document.createElement('li')
  if (className) li.className = className
  for (const [cls, text] of parts) {
    const span = document.createElement('span')
    span.className = cls
    span.textContent = text
    li.append(span)
  }
  const list = $('messages')
  list.append(li)
  list.scrollTop = list.scrollHeight
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
  $('messages').replaceChildren()
  for (const button of $('rooms').querySelectorAll('button')) {
    button.setAttribute('aria-current', String(button.dataset.room === room))
  }
  if (previous !== undefined) await client.leave(previous)
  const ack = await client.join(room)
  if (currentRoom === room) setMembers(ack.members)
  addLine([['text', `you joined #${room}`]], 'system')
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
    addLine([['text', 'reconnected']], 'system')
    // the client re-joined by itself; ask again to refresh who is here
    if (currentRoom !== undefined) {
      client.join(currentRoom).then((ack) => { if (ack.room === currentRoom) setMembers(ack.members) }, showError)
    }
    renderRooms().catch(() => {})
  })
  client.on('close', () => setStatus('reconnecting', 'offline'))
  client.on('reconnecting', ({ attempt, delay }) => {
    setStatus('reconnecting', `reconnecting in ${(delay / 1000).toFixed(1)} s (attempt ${attempt})`)
  })
  client.on('error', (err) => {
    if (client.state === 'closed') setStatus('closed', `disconnected: ${err.code}`)
  })
  client.on('chat.message', (data, msg) => {
    if (msg.room === currentRoom) addLine([['from', data.from], ['text', data.text]])
  })
  client.on('chat.announcement', (data, msg) => {
    if (msg.room === currentRoom) addLine([['from', `📣 ${data.from}`], ['text', data.text]], 'announcement')
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
  // sent now, or queued while offline and delivered after the reconnect
  client.send('chat.send', { text }, currentRoom)
  input.value = ''
})
