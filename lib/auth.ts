import type { FastifyRequest } from 'fastify'
import { errors } from './errors.js'
import type { RealtimeUser } from './types.js'

/** Where a token was found. */
export type TokenSource = 'header' | 'protocol' | 'query' | 'custom'

export interface FoundToken {
  token: string
  source: TokenSource
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

/**
 * Verify `found` with @fastify/jwt (its algorithms, keys, `trusted` and
 * `formatUser` apply). Its token errors are 401s already, except fast-jwt's
 * bare TokenErrors (e.g. `nbf` still in the future), made 401 here; other
 * errors (a failing `secret` or `trusted` callback) pass through.
 */
export async function verifyToken (request: FastifyRequest, found: FoundToken): Promise<RealtimeUser> {
  try {
    // always the token found here: @fastify/jwt's own lookup (cookie, onlyCookie, its extractToken) may read another
    const user = await (request as unknown as JwtRequest).jwtVerify({ extractToken: () => found.token })
    return (user ?? {}) as RealtimeUser
  } catch (err) {
    const { statusCode, code } = err as { statusCode?: unknown, code?: unknown }
    if (statusCode === undefined && typeof code === 'string' && code.startsWith('FAST_JWT_')) throw new errors.FST_REALTIME_UNAUTHORIZED()
    throw err
  }
}

/** The token's `exp` claim in ms since the epoch, if it has one. */
export function tokenExpiry (request: FastifyRequest, token: string): number | undefined {
  const jwt = (request.server as unknown as { jwt?: { decode: (token: string) => unknown } }).jwt
  const payload = jwt?.decode(token) as { exp?: unknown } | null | undefined
  return typeof payload?.exp === 'number' ? payload.exp * 1000 : undefined
}

/** Whether this app can verify tokens at all. */
export function canVerify (request: FastifyRequest): boolean {
  return typeof (request as unknown as Partial<JwtRequest>).jwtVerify === 'function'
}
