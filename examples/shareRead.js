// Terminal A: print the shared value every second (the article's shareRead.js).
//   node examples/shareRead.js
// The value lives in `share-data` in the current folder, or in $SHARE_OBJECT_PATH.
const shareObject = require('share-object')

setInterval(() => {
  console.log(shareObject.read())
}, 1000)
