import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { CloseCode, ErrorCode, RealtimeError, errors } from '../lib/index.js'

// The docs of this repository are the contract users read: each code table there
// must list exactly the codes the package has, no more, no fewer.
const protocolDoc = readFileSync(new URL('../docs/protocol.md', import.meta.url), 'utf8')
const errorsDoc = readFileSync(new URL('../docs/errors.md', import.meta.url), 'utf8')

const cells = (line: string): string[] => line.trim().replace(/^\||\|$/g, '').split(/(?<!\\)\|/).map((cell) => cell.trim())

/** The rows of the markdown table whose header's first cell is `firstHeader`, each as its cells. */
function table (markdown: string, firstHeader: string): string[][] {
  const lines = markdown.split('\n')
  for (let i = 0; i + 1 < lines.length; i++) {
    if (!lines[i].startsWith('|') || !/^\|[\s|:-]+\|$/.test(lines[i + 1].trim())) continue
    if (cells(lines[i])[0] !== firstHeader) continue
    const rows: string[][] = []
    for (let j = i + 2; j < lines.length && lines[j].startsWith('|'); j++) rows.push(cells(lines[j]))
    return rows
  }
  throw new Error(`no table headed "${firstHeader}"`)
}

/** First column of a code table: each cell must be one code in backticks. */
function codes (t: Test, rows: string[][], what: string): string[] {
  const found = rows.map(([first]) => /^`([^`]+)`$/.exec(first)?.[1])
  t.same(found.filter((code) => code === undefined), [], `every row of the ${what} table starts with a code in backticks`)
  const list = found.filter((code): code is string => code !== undefined)
  t.equal(new Set(list).size, list.length, `no code is listed twice in the ${what} table`)
  return list
}

const sorted = (values: Iterable<string | number>): string[] => [...values].map(String).sort()

t.test('docs/protocol.md lists exactly the wire error codes', async (t) => {
  const documented = codes(t, table(protocolDoc, 'error code'), 'error code')
  t.same(sorted(documented), sorted(Object.values(ErrorCode)), 'the error code table and ErrorCode hold the same codes')
  for (const code of Object.values(ErrorCode)) t.ok(documented.includes(code), `${code} is documented`)
  for (const code of documented) t.ok(Object.values<string>(ErrorCode).includes(code), `documented ${code} exists in ErrorCode`)
})

t.test('docs/protocol.md lists exactly the close codes', async (t) => {
  const documented = codes(t, table(protocolDoc, 'close code'), 'close code')
  t.same(sorted(documented), sorted(Object.values(CloseCode)), 'the close code table and CloseCode hold the same codes')
  for (const [name, code] of Object.entries(CloseCode)) t.ok(documented.includes(String(code)), `${code} (${name}) is documented`)
  for (const code of documented) t.ok(Object.values<number>(CloseCode).includes(Number(code)), `documented ${code} exists in CloseCode`)
})

t.test('docs/errors.md lists exactly the thrown errors, with their status and class', async (t) => {
  const rows = table(errorsDoc, 'code')
  const documented = codes(t, rows, 'errors')
  t.same(sorted(documented), sorted(Object.keys(errors)), 'the errors table and `errors` hold the same codes')
  for (const code of Object.keys(errors)) t.ok(documented.includes(code), `${code} is documented`)
  for (const [first, , status, errorClass] of rows) {
    const code = first.slice(1, -1)
    const ErrorType = (errors as Record<string, new (...args: string[]) => Error & { code: string, statusCode?: number }>)[code]
    if (ErrorType === undefined) {
      t.fail(`documented ${code} exists in errors`)
      continue
    }
    const err = new ErrorType('a', 'b', 'c')
    t.equal(err.code, code, `${code} carries its code`)
    if (/^\d{3}$/.test(status)) t.equal(err.statusCode, Number(status), `${code} answers HTTP ${status}`)
    else t.notOk((err.statusCode ?? 500) < 500, `${code} is not documented with a status, so it is not a 4xx answer`)
    t.ok(['`Error`', '`TypeError`'].includes(errorClass), `${code}: class column is \`Error\` or \`TypeError\``)
    t.equal(err instanceof TypeError, errorClass === '`TypeError`', `${code} is ${errorClass}`)
  }
})

t.test('registration errors format their message', async (t) => {
  const err = new errors.FST_REALTIME_INVALID_OPTION('maxPayload', 'must be a number')
  t.equal(err.code, 'FST_REALTIME_INVALID_OPTION')
  t.match(err.message, /maxPayload/)
})

t.test('RealtimeError', async (t) => {
  const plain = new RealtimeError('nope')
  t.equal(plain.code, 'HANDLER_ERROR')
  t.equal(plain.message, 'nope')
  t.equal(plain.details, undefined)
  t.ok(plain instanceof Error)
  const custom = new RealtimeError('full', { code: 'ROOM_FULL', details: [{ max: 2 }] })
  t.equal(custom.code, 'ROOM_FULL')
  t.same(custom.details, [{ max: 2 }])
  t.equal(custom.name, 'RealtimeError')
})

t.test('RealtimeError instanceof holds across copies of the class (ESM and CJS builds)', async (t) => {
  const copy = Object.assign(new Error('x'), { code: 'X' })
  Object.defineProperty(copy, Symbol.for('fastify-realtime.RealtimeError'), { value: true })
  t.ok(copy instanceof RealtimeError, 'a RealtimeError made by another copy is recognised')
  t.notOk(new Error('plain') instanceof RealtimeError)
  t.notOk((null as unknown as object) instanceof RealtimeError)
})
