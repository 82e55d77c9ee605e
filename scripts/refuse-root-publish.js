#!/usr/bin/env node
'use strict'

// `prepublishOnly` of the repository root: the root package.json builds from source (`prepare`)
// and lists no prebuilt binaries, so it is never what users should get. Publish the tarballs
// that `npm run pack:release` writes to dist/ instead (see .github/workflows/CI.yml).
console.error(
  'share-object: do not publish the repository root. Run `npm run pack:release` and publish the ' +
    'tarballs it writes to dist/ (each platform package first, then share-object-<version>.tgz).',
)
process.exit(1)
