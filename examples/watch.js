// Push instead of polling: print each new value the moment any process writes it.
//   node examples/watch.js   (then run examples/shareWrite.js in another terminal)
const { SharedObject } = require('share-object')

const shared = SharedObject.open(process.env.SHARE_OBJECT_PATH || 'share-data')
console.log(`watching ${shared.path} (version ${shared.version}); Ctrl-C to stop`)
shared.watch((value, version) => {
  console.log(`#${version}: ${value}`)
})
process.on('SIGINT', () => {
  shared.close()
  process.exit(0)
})
