// Build step: CommonJS entry so that require('fastify-realtime') returns the
// plugin itself, with .default and the named exports on it, like other Fastify plugins.
import { writeFileSync } from 'node:fs'

writeFileSync(new URL('../dist/cjs/package.json', import.meta.url), '{ "type": "commonjs" }\n')
writeFileSync(new URL('../dist/cjs/main.js', import.meta.url), `'use strict'
const entry = require('./index.js')
module.exports = entry.default
Object.assign(module.exports, entry)
`)
