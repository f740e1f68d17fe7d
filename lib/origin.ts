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
  if (host === undefined || host === '') return false
  try {
    const from = new URL(origin)
    // the Host read with the Origin's scheme, so a default port written out (host:443) still matches
    return from.host !== '' && from.host === new URL(`${from.protocol}//${host}`).host
  } catch {
    return false
  }
}
