import type { FastifyRequest } from 'fastify'

function decodeKey (key: string): string {
  try {
    return decodeURIComponent(key.replace(/\+/g, ' ')).toLowerCase()
  } catch {
    return key.toLowerCase()
  }
}

/**
 * `url` with the value of every `token` query parameter replaced, for logs.
 * Keys are compared decoded, as the query parser reads them (`?%74oken=` is `token`).
 */
export function redactUrl (url: string): string {
  const start = url.indexOf('?')
  if (start === -1) return url
  const pairs = url.slice(start + 1).split('&')
  for (let i = 0; i < pairs.length; i++) {
    const eq = pairs[i].indexOf('=')
    const key = eq === -1 ? pairs[i] : pairs[i].slice(0, eq)
    if (decodeKey(key) === 'token') pairs[i] = `${key}=[REDACTED]`
  }
  return `${url.slice(0, start + 1)}${pairs.join('&')}`
}

/**
 * Request serializer for WebSocket routes: Fastify's fields, with the query
 * token redacted (Fastify logs the url before any hook runs).
 */
export function redactedRequest (request: FastifyRequest): Record<string, unknown> {
  return {
    method: request.method,
    url: redactUrl(request.url),
    host: request.headers.host,
    remoteAddress: request.raw.socket?.remoteAddress,
    remotePort: request.raw.socket?.remotePort
  }
}
