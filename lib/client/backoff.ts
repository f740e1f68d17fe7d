/** Backoff settings after defaults. */
export interface Backoff {
  base: number
  cap: number
  random: () => number
}

/**
 * Full-jitter exponential backoff: a delay drawn uniformly from
 * [0, min(cap, base * 2^(attempt - 1))), so many clients dropped at once do not
 * come back at once. `attempt` counts from 1.
 * @example backoffDelay(3, { base: 500, cap: 5000, random: Math.random }) // 0..1999
 */
export function backoffDelay (attempt: number, { base, cap, random }: Backoff): number {
  // 2 ** 1024 is Infinity and min() takes the cap; no overflow to guard
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt - 1))
  const r = random()
  // a random() outside [0, 1) must not push the delay past its bounds
  const unit = r >= 0 && r < 1 ? r : 0
  return Math.floor(unit * ceiling)
}

/** The longest `retry <ms>` hint the client honours: a server cannot park it for days. */
export const MAX_RESTART_HINT = 300_000

/**
 * The wait before the first attempt after a close 1012 (service restart)
 * whose reason is `retry <ms>`: uniform in [0, ms], so a drained fleet comes
 * back spread out. Undefined when the reason carries no such hint.
 * @example restartDelay('retry 1000', Math.random) // 0..1000
 */
export function restartDelay (reason: string, random: () => number): number | undefined {
  const hint = /^retry (\d{1,15})$/.exec(reason)
  if (hint === null) return undefined
  const ms = Math.min(Number(hint[1]), MAX_RESTART_HINT)
  const r = random()
  const unit = r >= 0 && r < 1 ? r : 0
  return Math.floor(unit * (ms + 1))
}
