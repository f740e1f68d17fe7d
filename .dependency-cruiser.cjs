// Import rules of lib/, checked by `npm run lint:imports` (part of `npm test`).
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Imports run one way, from wire constants and types up to the plugin entry: no circle, `import type` included.',
      from: { path: '^lib/' },
      to: { circular: true }
    },
    {
      name: 'client-stands-alone',
      severity: 'error',
      comment: 'The browser client imports nothing of the server but lib/protocol.ts.',
      from: { path: '^lib/client/' },
      to: { path: '^lib/', pathNot: ['^lib/client/', '^lib/protocol\\.ts$'] }
    },
    {
      name: 'protocol-imports-nothing',
      severity: 'error',
      from: { path: '^lib/protocol\\.ts$' },
      to: { path: '.' }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default', 'types'] }
  }
}
