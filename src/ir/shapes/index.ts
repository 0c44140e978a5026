// Importing this module registers every shape rule.
import './elementwise.js';
import './nn.js';
import './tensor.js';
import './topk.js';
import './nchwc.js';
