// Time, minor page faults and CPU time (user/system) of each PreActResNet-18 train step in a train-step-only
// process: the evidence for the page-fault paragraph of bench/RESULTS.md (32 MiB activations are fresh mmaps
// each step). ARENA=1 turns ONNX Runtime's CPU arena on; glibc tunables go in GLIBC_TUNABLES; peak RSS:
// wrap in /usr/bin/time -f %M.
//   node bench/train_step_faults.mjs WIDTH IN_CHANNELS IMAGE_SIZE BATCH     e.g. 64 3 32 128
import { trainStep } from './train_step_setup.mjs';

const [width, inChannels, imageSize, batch] = process.argv.slice(2).map(Number);
const dist = new URL('../dist/', import.meta.url).pathname;
const { session, feeds } = await trainStep(dist, { width, inChannels, imageSize, batch }, { memArena: process.env.ARENA === '1' });
await session.run(feeds);
for (let r = 0; r < 5; r++) {
  const f0 = process.resourceUsage().minorPageFault, t0 = performance.now();
  const c0 = process.cpuUsage();
  await session.run(feeds);
  const c1 = process.cpuUsage(c0);
  console.log(`${(performance.now() - t0).toFixed(1)} ms, minor faults ${process.resourceUsage().minorPageFault - f0}, user ${(c1.user/1000).toFixed(0)} sys ${(c1.system/1000).toFixed(0)} ms`);
}
