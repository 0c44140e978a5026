// Importing this module registers every VJP rule. One file per op family.
import './arithmetic.js';
import './reduce.js';
import './conv.js';
import './elementwise.js';
import './activations.js';
import './shape.js';
import './softmax.js';
import './topk.js';
import './pool.js';
import './batchnorm.js';
import './linear.js';
import './parametric.js';
import './resize.js';
