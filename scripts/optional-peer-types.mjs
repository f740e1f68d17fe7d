// Build step: the published types name `typebox` (1.x), an optional peer, to
// type the data of its schemas. TypeScript drops comments inside the emitted
// .d.ts, so this puts back the `@ts-ignore` that lets an app without `typebox`
// installed compile under `skipLibCheck: false` (such data types as `any`).
import { readFileSync, writeFileSync } from 'node:fs'

const MARK = "import('typebox')"
for (const build of ['esm', 'cjs']) {
  const file = new URL(`../dist/${build}/types.d.ts`, import.meta.url)
  const lines = readFileSync(file, 'utf8').split('\n')
  const out = []
  let found = 0
  for (const line of lines) {
    if (line.includes(MARK)) {
      found++
      if (!out.at(-1)?.includes('@ts-ignore')) out.push('// @ts-ignore -- typebox is an optional peer; without it, 1.x schemas type their data as any')
    }
    out.push(line)
  }
  if (found === 0) throw new Error(`dist/${build}/types.d.ts: no ${MARK} found; update scripts/optional-peer-types.mjs`)
  writeFileSync(file, out.join('\n'))
}
