// ES module entry: the same API as index.js.
import shareObject from './index.js'

export const { read, write, SharedObject, Channel, SharedMap } = shareObject
export default shareObject
