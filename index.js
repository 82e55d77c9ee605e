'use strict'

// share-object: Node.js processes sharing memory through a file mapped with MAP_SHARED.
// The public API; see index.d.ts for its documentation and README.md for a tour.

const { SharedObject, read, write } = require('./lib/shared-object.js')
const { Channel } = require('./lib/channel.js')
const { SharedMap } = require('./lib/shared-map.js')

module.exports = { read, write, SharedObject, Channel, SharedMap }
// `import shareObject from 'share-object'` compiled to CommonJS without esModuleInterop
// reads `.default`: the module itself (not enumerable, so it lists only the API).
Object.defineProperty(module.exports, 'default', { value: module.exports, enumerable: false })
