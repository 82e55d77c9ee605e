// Terminal B: write a value (the article's shareWrite.js).
//   node examples/shareWrite.js            -> writes 'Hello World!'
//   node examples/shareWrite.js 'any text' -> writes that
const shareObject = require('share-object')

const value = process.argv[2] ?? 'Hello World!'
const bytes = shareObject.write(value)
console.log(`wrote ${bytes} bytes`)
