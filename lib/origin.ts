import type { AllowedOrigins } from './types.js'

/**
 * Cross-site WebSocket hijacking guard. Clients that send no Origin (servers,
 * CLIs) pass; a browser's Origin must match `allowed`, or by default the Host.
 */
export function isOriginAllowed (origin: string | undefined, host: string | undefined, allowed: AllowedOrigins | undefined): boolean {
  if (origin === undefined) return true
  if (allowed === '*') return true
  if (typeof allowed === 'function') return allowed(origin) === true
  if (allowed !== undefined) return allowed.includes(origin)
  if (host === undefined) return false
  try {
    return new URL(origin).host === host.toLowerCase()
  } catch {
    return false
  }
}
