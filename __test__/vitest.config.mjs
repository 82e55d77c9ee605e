// vitest runs Keyv's compliance suite (@keyv/test-suite) against share-object/keyv, the way
// Keyv's own adapters run it; __test__/keyv.test.js starts it during `npm test` (or run
// `npm run test:keyv`). Only that file: the rest of __test__/ is node:test.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['__test__/keyv-suite.vitest.mjs'],
    // One file, run in a child process of its own.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
  },
})
