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
 * @example backoffDelay(3, { base: 500, cap: 30000, random: Math.random }) // 0..1999
 */
export function backoffDelay (attempt: number, { base, cap, random }: Backoff): number {
  // 2 ** 1024 is Infinity and min() takes the cap; no overflow to guard
  const ceiling = Math.min(cap, base * 2 ** Math.max(0, attempt - 1))
  const r = random()
  // a random() outside [0, 1) must not push the delay past its bounds
  const unit = r >= 0 && r < 1 ? r : 0
  return Math.floor(unit * ceiling)
}
