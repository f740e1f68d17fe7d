import type { FastifyRequest } from 'fastify'
import { errors } from './errors.js'
import { CloseCode } from './protocol.js'
import { kExpiry } from './symbols.js'
import type { RealtimeUser } from './types.js'

/** Where a token was found. */
export type TokenSource = 'header' | 'protocol' | 'query' | 'custom'

export interface FoundToken {
  token: string
  source: TokenSource
}

/** What a verified token gives a connection. */
export interface VerifiedToken {
  /** what @fastify/jwt returned (after its `formatUser`) */
  user: RealtimeUser
  /** the token's own `sub` claim: a string, or a number as its decimal string; else null */
  sub: string | null
  /** the token's own `exp`, in ms since the epoch */
  expiresAt: number | undefined
}

const BEARER = /^Bearer\s+(\S+)\s*$/i

/** The token of the `bearer, <jwt>` subprotocol pair, if the client offered it. */
export function protocolToken (header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined
  const offered = header.split(',')
  for (let i = 0; i < offered.length - 1; i++) {
    if (offered[i].trim() === 'bearer') {
      const token = offered[i + 1].trim()
      return token === '' ? undefined : token
    }
  }
  return undefined
}

/**
 * Find the token: `auth.extractToken`, else `Authorization: Bearer`, else the
 * `bearer` subprotocol, else the `token` query parameter.
 */
export function findToken (request: FastifyRequest, extract?: (request: FastifyRequest) => string | undefined): FoundToken | undefined {
  if (extract !== undefined) {
    const token = extract(request)
    return typeof token === 'string' && token !== '' ? { token, source: 'custom' } : undefined
  }
  const header = request.headers.authorization
  if (header !== undefined) {
    const match = BEARER.exec(header)
    if (match !== null) return { token: match[1], source: 'header' }
  }
  const fromProtocol = protocolToken(request.headers['sec-websocket-protocol'])
  if (fromProtocol !== undefined) return { token: fromProtocol, source: 'protocol' }
  const query = request.query as Record<string, unknown> | undefined
  const fromQuery = query?.token
  if (typeof fromQuery === 'string' && fromQuery !== '') return { token: fromQuery, source: 'query' }
  return undefined
}

interface JwtRequest {
  jwtVerify: (options?: { extractToken?: () => string }) => Promise<unknown>
}

interface JwtDecorator {
  cookie?: unknown
  options?: { verify?: { extractToken?: unknown, onlyCookie?: unknown } }
}

/**
 * Whether @fastify/jwt's own lookup reads the Authorization header, so a token
 * can be verified with its global options (jwtVerify with options of its own
 * builds a new fast-jwt verifier each time, and skips the app's `verify.cache`).
 */
function readsAuthorizationHeader (request: FastifyRequest): boolean {
  const jwt = (request.server as unknown as { jwt?: JwtDecorator }).jwt
  if (jwt === undefined || jwt.cookie !== undefined) return false
  const verify = jwt.options?.verify
  return verify?.extractToken === undefined && verify?.onlyCookie === undefined
}

/**
 * Start @fastify/jwt's verification of `token`. Its lookup runs synchronously
 * at the call, so the token is put in the Authorization header for that call
 * only and the header is restored at once; where the app's lookup reads
 * elsewhere (a cookie, its own extractToken), the token is passed explicitly.
 */
function startVerify (request: FastifyRequest, token: string): Promise<unknown> {
  const jwtRequest = request as unknown as JwtRequest
  if (!readsAuthorizationHeader(request) || /\s/.test(token)) return jwtRequest.jwtVerify({ extractToken: () => token })
  const headers = request.headers
  const previous = headers.authorization
  headers.authorization = `Bearer ${token}`
  try {
    return jwtRequest.jwtVerify()
  } finally {
    // the last key added, removed again: the headers object keeps its shape
    if (previous === undefined) delete headers.authorization
    else headers.authorization = previous
  }
}

/**
 * The claims of a token @fastify/jwt has just verified, read from the token
 * itself: whatever its `decode` options (`complete: true` answers
 * `{ header, payload }`) or `formatUser` make of them.
 */
function verifiedClaims (token: string): Record<string, unknown> {
  const part = token.split('.')[1]
  if (part === undefined) return {}
  try {
    const claims: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'))
    return claims !== null && typeof claims === 'object' ? claims as Record<string, unknown> : {}
  } catch {
    return {}
  }
}

/** A `sub` claim as the plugin keys users by it: strings as they are, numbers as their decimal string. */
export function subOf (claims: Record<string, unknown>): string | null {
  const sub = claims.sub
  if (typeof sub === 'string') return sub
  if (typeof sub === 'number' && Number.isFinite(sub)) return String(sub)
  return null
}

/**
 * Verify `found` with @fastify/jwt (its algorithms, keys, `trusted` and
 * `formatUser` apply). Its token errors are 401s already, except fast-jwt's
 * bare TokenErrors (e.g. `nbf` still in the future), made 401 here; other
 * errors (a failing `secret` or `trusted` callback) pass through.
 */
export async function verifyToken (request: FastifyRequest, found: FoundToken): Promise<VerifiedToken> {
  let user: unknown
  try {
    // always the token found here: @fastify/jwt's own lookup (cookie, onlyCookie, its extractToken) may read another
    user = await startVerify(request, found.token)
  } catch (err) {
    const { statusCode, code } = err as { statusCode?: unknown, code?: unknown }
    if (statusCode === undefined && typeof code === 'string' && code.startsWith('FAST_JWT_')) throw new errors.FST_REALTIME_UNAUTHORIZED()
    throw err
  }
  const claims = verifiedClaims(found.token)
  return {
    user: (user ?? {}) as RealtimeUser,
    sub: subOf(claims),
    expiresAt: typeof claims.exp === 'number' ? claims.exp * 1000 : undefined
  }
}

/** Whether this app can verify tokens at all. */
export function canVerify (request: FastifyRequest): boolean {
  return typeof (request as unknown as Partial<JwtRequest>).jwtVerify === 'function'
}

/** Longest single wait of the token-expiry timer. */
const EXPIRY_STEP_MS = 60_000

/** What the expiry timer needs of a connection. */
export interface Expiring {
  readonly open: boolean
  close: (code: number, reason: string) => void
  [kExpiry]: NodeJS.Timeout | undefined
}

/**
 * (Re)arm the timer that closes `conn` with 4401 when its token expires;
 * `undefined` disarms it.
 */
export function armExpiry (conn: Expiring, expiresAt: number | undefined): void {
  if (conn[kExpiry] !== undefined) clearTimeout(conn[kExpiry])
  conn[kExpiry] = undefined
  // a refresh that settles after the socket closed must not arm a timer that holds it
  if (expiresAt === undefined || !conn.open) return
  const delay = expiresAt - Date.now()
  if (delay <= 0) {
    conn.close(CloseCode.TOKEN_INVALID, 'token expired')
    return
  }
  // Node keeps a timer list per distinct duration until it elapses, even when
  // cleared: wait in whole seconds, at most a minute at a time (60 long durations
  // in all, far under setTimeout's 2^31-1 ms), and only the last sub-second exactly.
  const wait = delay < 1000 ? delay : Math.min(Math.floor(delay / 1000) * 1000, EXPIRY_STEP_MS)
  const timer = setTimeout(() => { armExpiry(conn, expiresAt) }, wait)
  timer.unref()
  conn[kExpiry] = timer
}

/** Stop the expiry timer (the socket closed). */
export function disarmExpiry (conn: Expiring): void {
  if (conn[kExpiry] !== undefined) clearTimeout(conn[kExpiry])
  conn[kExpiry] = undefined
}
