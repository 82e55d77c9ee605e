// ES module entry of share-object/rate-limit: the same API as index.js.
import rateLimit from './index.js'

export const { ShareObjectStore } = rateLimit
export default rateLimit
