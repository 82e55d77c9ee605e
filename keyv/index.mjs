// ES module entry of share-object/keyv: the same API as index.js.
import keyv from './index.js'

export const { KeyvShareObject } = keyv
export default keyv
