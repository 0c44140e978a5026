// Process settings that must be in place before anything else runs; main.ts imports this module first.
//
// ONNX Runtime's Node binding runs every session.run() on libuv's thread pool, and glibc gives each thread
// that allocates its own malloc arena. With the default pool of 4, consecutive train steps land on
// different threads, so the tensors one step frees are not reused by the next and a training process's
// peak RSS wanders by ~20 % from run to run (measured on PreActResNet-18 w64: 2.0-2.45 GB with 4 pool
// threads, 1.95-2.1 GB with 2; bench/RESULTS.md). Two threads still let data loading (file reads, image
// decoding) overlap a running step. The pool starts on first use, so setting it here takes effect;
// a value the user set is kept.
process.env.UV_THREADPOOL_SIZE ??= '2';
