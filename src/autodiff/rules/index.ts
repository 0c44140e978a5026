// Importing this module registers every VJP rule. One file per op family.
import './arithmetic.js';
import './reduce.js';
