/**
 * The Node build of @tensorflow/tfjs-core registers no gradient functions (its
 * register_all_gradients module ships only as extensionless ESM). The union package's Node
 * bundle registers them all on the same tfjs-core instance, so importing it once is enough.
 */
import '@tensorflow/tfjs';
