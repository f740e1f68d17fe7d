/** The q-quantile (0..1) of an ascending array; NaN when empty. */
export function percentile (sorted, q) {
  const n = sorted.length
  if (n === 0) return NaN
  return sorted[Math.min(n - 1, Math.floor(q * n))]
}

/** The median of finite numbers; NaN when there are none. */
export function median (values) {
  const finite = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  const n = finite.length
  if (n === 0) return NaN
  return n % 2 === 1 ? finite[(n - 1) / 2] : (finite[n / 2 - 1] + finite[n / 2]) / 2
}
