import type { StandardSocketLike, WebSocketConstructorLike } from './types.js'

/** How a socket ended: `opened` false means the attempt failed (`status` when the server answered HTTP). */
export interface SocketEnd {
  code: number
  reason: string
  opened: boolean
  status?: number
  cause?: unknown
}

export interface SocketCallbacks {
  open: () => void
  /** a text frame, or `null` for a binary one (the server sends none: the client reports it) */
  message: (text: string | null) => void
  close: (end: SocketEnd) => void
}

/** One connection attempt, whichever WebSocket implementation carries it. */
export interface ClientSocket {
  send: (text: string) => void
  /** Closing handshake; `done` settles when the socket is gone. */
  close: (code: number, reason: string) => void
  /** Drop the socket now, without waiting for the peer (a dead link). */
  abort: () => void
  readonly done: Promise<void>
}

/** The part of the `ws` package's WebSocket the client uses (typed here: no dependency on @types/ws). */
interface NodeWs {
  readonly readyState: number
  on: (event: string, fn: (...args: any[]) => void) => unknown
  send: (data: string) => void
  close: (code?: number, reason?: string) => void
  terminate: () => void
}
type NodeWsConstructor = new (url: string, protocols: string[], options: Record<string, unknown>) => NodeWs

/** Where to find a WebSocket: a standard constructor (browsers, Node 22+, injected), else `ws`. */
export type SocketFactory =
  | { kind: 'standard', Ctor: WebSocketConstructorLike }
  | { kind: 'node', Ctor: NodeWsConstructor, options: Record<string, unknown> }

// a variable, so bundlers do not try to pull `ws` into a browser build
const WS_MODULE = 'ws'
let nodeWs: Promise<NodeWsConstructor> | undefined

/** The standard constructor if there is one, else `ws` loaded on first use. */
export async function socketFactory (injected: WebSocketConstructorLike | undefined, wsOptions: Record<string, unknown>): Promise<SocketFactory> {
  const Ctor = injected ?? (globalThis as { WebSocket?: WebSocketConstructorLike }).WebSocket
  if (Ctor !== undefined) return { kind: 'standard', Ctor }
  nodeWs ??= import(/* webpackIgnore: true */ /* @vite-ignore */ WS_MODULE).then((mod) => (mod.default ?? mod.WebSocket) as NodeWsConstructor)
  try {
    return { kind: 'node', Ctor: await nodeWs, options: wsOptions }
  } catch (err) {
    nodeWs = undefined
    throw err
  }
}

/** Open one socket. The token goes where the implementation can put it. */
export function openSocket (factory: SocketFactory, url: string, token: string | undefined, on: SocketCallbacks): ClientSocket {
  return factory.kind === 'standard'
    ? openStandard(factory.Ctor, url, token, on)
    : openNode(factory.Ctor, factory.options, url, token, on)
}

/**
 * Browsers cannot set headers: the token rides in the `bearer, <jwt>`
 * subprotocol pair. A refused upgrade is only a close before open.
 */
function openStandard (Ctor: WebSocketConstructorLike, url: string, token: string | undefined, on: SocketCallbacks): ClientSocket {
  const ws: StandardSocketLike = new Ctor(url, token === undefined ? [] : ['bearer', token])
  let opened = false
  let finish: () => void = noop
  const done = new Promise<void>((resolve) => { finish = resolve })
  ws.onopen = () => {
    opened = true
    on.open()
  }
  ws.onmessage = (event) => {
    on.message(typeof event.data === 'string' ? event.data : null)
  }
  ws.onerror = noop
  ws.onclose = (event) => {
    finish()
    on.close({ code: event.code, reason: event.reason, opened })
  }
  return {
    done,
    send: (text) => { ws.send(text) },
    close: (code, reason) => { ws.close(code, reason) },
    // the standard API has no terminate; a close frame is the fastest way out
    abort: () => { ws.close(4000, 'abandoned') }
  }
}

/** `ws` in Node: the token goes in the Authorization header; a refusal tells its HTTP status. */
function openNode (Ctor: NodeWsConstructor, options: Record<string, unknown>, url: string, token: string | undefined, on: SocketCallbacks): ClientSocket {
  const headers = { ...(options.headers as Record<string, string> | undefined) }
  if (token !== undefined) headers.authorization = `Bearer ${token}`
  const ws = new Ctor(url, [], { ...options, headers })
  let opened = false
  let status: number | undefined
  let cause: unknown
  let finish: () => void = noop
  const done = new Promise<void>((resolve) => { finish = resolve })
  ws.on('open', () => {
    opened = true
    on.open()
  })
  ws.on('message', (data: { toString: () => string }, isBinary: boolean) => {
    on.message(isBinary ? null : data.toString())
  })
  ws.on('unexpected-response', (_request: unknown, response: { statusCode?: number }) => {
    status = response.statusCode
    ws.terminate()
  })
  ws.on('error', (err: unknown) => { cause ??= err })
  ws.on('close', (code: number, reason: { toString: () => string }) => {
    finish()
    on.close({ code, reason: reason.toString(), opened, status, cause })
  })
  return {
    done,
    send: (text) => { ws.send(text) },
    close: (code, reason) => { ws.close(code, reason) },
    abort: () => { ws.terminate() }
  }
}

function noop (): void {}
