#!/usr/bin/env bash
# What a user gets from `npm install fastify-realtime`: packs this repository
# (prepack builds it), installs the tarball in a fresh app beside its peers, and
# checks that the published types compile under strict (ESM and CommonJS), that
# npm resolved a single fastify, and that every entry point loads.
# Prints a tap-style summary line, "# { total: N, pass: N, fail: N }", that
# .ci/run adds to its count; exits 1 if any check failed.
set -euo pipefail
cd "$(dirname "$0")/.."

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
app="$work/app"
mkdir -p "$app"

total=0
failed=0
# check [--show] <name> <command...>: runs the command in the app; shows its
# output on failure (and with --show, on success too)
check () {
  local show=false
  if [ "$1" = --show ]; then show=true; shift; fi
  local name=$1
  shift
  total=$((total + 1))
  if (cd "$app" && "$@") >"$work/out" 2>&1; then
    echo "ok $total - $name"
    if $show; then sed 's/^/    /' "$work/out"; fi
  else
    failed=$((failed + 1))
    echo "not ok $total - $name"
    sed 's/^/    /' "$work/out"
  fi
}
summary () {
  echo "# { total: $total, pass: $((total - failed)), fail: $failed }"
  [ "$failed" -eq 0 ]
}

echo "== npm pack"
total=$((total + 1))
if npm pack --pack-destination "$work" >"$work/out" 2>&1; then
  echo "ok $total - npm pack"
else
  failed=$((failed + 1))
  echo "not ok $total - npm pack"
  sed 's/^/    /' "$work/out"
  summary
  exit 1
fi
tarball=$(ls "$work"/fastify-realtime-*.tgz)

echo "== npm install in a fresh app"
cat >"$app/package.json" <<'EOF'
{ "name": "check-app", "version": "1.0.0", "private": true, "type": "module" }
EOF
total=$((total + 1))
if (cd "$app" && npm install --no-audit --no-fund "$tarball" fastify@5.2 @fastify/jwt @sinclair/typebox typescript) >"$work/out" 2>&1; then
  echo "ok $total - npm install of the tarball, fastify@5.2, @fastify/jwt, @sinclair/typebox, typescript"
else
  failed=$((failed + 1))
  echo "not ok $total - npm install of the tarball and its peers"
  sed 's/^/    /' "$work/out"
  summary
  exit 1
fi

# One fastify in the tree: a second copy would give the plugin another
# FastifyInstance type than the app's and break declaration merging.
single_fastify () {
  npm ls fastify --all
  local copies
  copies=$(npm ls fastify --all --parseable | grep -c '/node_modules/fastify$')
  echo "copies of fastify: $copies"
  [ "$copies" -eq 1 ]
}
check 'npm resolved a single copy of fastify' single_fastify

echo "== types under strict"
# (a) ESM: the contract's own example, with data typed from the TypeBox schema
cat >"$app/app.ts" <<'EOF'
import Fastify from 'fastify'
import jwt from '@fastify/jwt'
import realtime, { defineRoute } from 'fastify-realtime'
import { Type } from '@sinclair/typebox'

// defineRoute types each handler's data from its schema (an inline route's data is untyped)
const chat = defineRoute({
  path: '/chat',
  messages: {
    'chat.send': {
      schema: Type.Object({ text: Type.String({ minLength: 1, maxLength: 2000 }) }),
      handler (conn, data, msg) {
        const text: string = data.text
        // @ts-expect-error data is typed from the schema, so it has no `nope`
        const nope: unknown = data.nope
        if (msg.room !== undefined) conn.broadcast(msg.room, 'chat.message', { from: conn.sub, text, nope })
        return { ok: true }
      }
    }
  },
  canJoin: (conn, room) => room.startsWith('public:') || conn.user.rooms?.includes(room) === true
})

const app = Fastify({ logger: true })
await app.register(jwt, { secret: 'a-secret-of-at-least-32-characters-for-hs256' })
await app.register(realtime, { maxConnections: 10_000, heartbeat: { interval: 30_000 }, routes: [chat] })
// @ts-expect-error an option of the wrong type is a compile error
await app.register(realtime, { maxPayload: 'big' })
app.realtime.broadcast('public:news', 'news.item', { title: 'hello' })
const members: Array<{ id: string, sub: string | null }> = await app.realtime.members('public:news')
console.log(members.length)
await app.close()
EOF
# (b) CommonJS: `import x = require()` must be the plugin itself, not a namespace
cat >"$app/legacy.cts" <<'EOF'
import Fastify = require('fastify')
import realtime = require('fastify-realtime')

const app = Fastify()
app.register(realtime, { auth: { required: false }, routes: [] })
app.after(() => {
  app.realtime.broadcast('lobby', 'news.item', { title: 'hello' })
})
EOF
for kind in esm cjs; do
  if [ "$kind" = esm ]; then file=app.ts; else file=legacy.cts; fi
  cat >"$app/tsconfig.$kind.json" <<EOF
{
  "compilerOptions": {
    "strict": true,
    "skipLibCheck": false,
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "noEmit": true
  },
  "files": ["$file"]
}
EOF
done
check 'an ESM app with a typed route compiles under strict, skipLibCheck false' npx tsc -p tsconfig.esm.json
check "a .cts file's \`import realtime = require('fastify-realtime')\` is the plugin" npx tsc -p tsconfig.cjs.json

echo "== entry points"
check "require('fastify-realtime') is the plugin" node -e "
const realtime = require('fastify-realtime')
if (typeof realtime !== 'function') throw new Error('require gave ' + typeof realtime)
if (realtime.default !== realtime && typeof realtime.default !== 'function') throw new Error('no .default')
for (const name of ['realtime', 'errors', 'ErrorCode', 'CloseCode', 'RealtimeError']) if (realtime[name] === undefined) throw new Error('no ' + name)
"
check "import of 'fastify-realtime' gives the plugin" node --input-type=module -e "
import realtime, { errors, ErrorCode, CloseCode, RealtimeError } from 'fastify-realtime'
if (typeof realtime !== 'function') throw new Error('import gave ' + typeof realtime)
for (const value of [errors, ErrorCode, CloseCode, RealtimeError]) if (value === undefined) throw new Error('a named export is missing')
"
check "require('fastify-realtime/client')" node -e "
const { createClient } = require('fastify-realtime/client')
if (typeof createClient !== 'function') throw new Error('no createClient')
"
check "import of 'fastify-realtime/client'" node --input-type=module -e "
import { createClient } from 'fastify-realtime/client'
if (typeof createClient !== 'function') throw new Error('no createClient')
"
# ioredis is an optional peer, not installed here: using the Redis adapter
# (importing the subpath, or registering the adapter it gives) must fail with
# an error that names ioredis.
redis_without_ioredis='
  let message
  try {
    const { redisAdapter } = await load("fastify-realtime/redis")
    const { default: realtime } = await load("fastify-realtime")
    const { default: Fastify } = await load("fastify")
    const app = Fastify()
    await app.register(realtime, { auth: { required: false }, adapter: redisAdapter({ url: "redis://127.0.0.1:9" }) })
    await app.ready()
    await app.close()
  } catch (err) {
    message = String(err && err.message)
  }
  if (message === undefined) throw new Error("the Redis adapter worked without ioredis")
  console.log(message)
  if (!message.includes("ioredis")) throw new Error("the error does not mention ioredis")
'
check --show "require('fastify-realtime/redis') without ioredis fails naming ioredis" node -e "
setTimeout(() => { console.error('timed out'); process.exit(1) }, 10000).unref()
const load = async (name) => { const m = require(name); return m.default === undefined ? { ...m, default: m } : m }
;(async () => { $redis_without_ioredis })().catch((err) => { console.error(err); process.exit(1) })
"
check --show "import of 'fastify-realtime/redis' without ioredis fails naming ioredis" node --input-type=module -e "
setTimeout(() => { console.error('timed out'); process.exit(1) }, 10000).unref()
const load = (name) => import(name)
$redis_without_ioredis
"

summary
