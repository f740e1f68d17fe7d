// `node --import` hook for the Redis suite against ioredis 6: every import of
// 'ioredis' (the tests' and the adapter's own) resolves to the ioredis6 alias
// installed as a devDependency. Used by `npm run test:redis:ioredis6`.
import { register } from 'node:module'

register('data:text/javascript,' + encodeURIComponent(`
export async function resolve (specifier, context, next) {
  if (specifier === 'ioredis' || specifier.startsWith('ioredis/')) return next(specifier.replace(/^ioredis/, 'ioredis6'), context)
  return next(specifier, context)
}
`), import.meta.url)
