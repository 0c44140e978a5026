// Same-process A/B of the PreActResNet-18 train step between builds of advrun: timings on this shared
// machine move 5-10 % between processes, so two graph formulations are compared by building each one's
// train step from its own dist directory and alternating their runs in one process. How the "same-process
// A/B" numbers in bench/RESULTS.md were taken (e.g. copy the committed build to dist-a, change the code,
// `npm run build`, then compare dist-a and dist).
//   node bench/train_step_ab.mjs WIDTH IN_CHANNELS IMAGE_SIZE BATCH DIST_A DIST_B [...]   (ROUNDS=6 by default)
//   e.g. node bench/train_step_ab.mjs 16 1 28 128 $PWD/dist-a $PWD/dist
// A build given twice (A B A B) shows how much two identical sessions differ. Peak RSS: wrap in /usr/bin/time -f %M.
import { resolve } from 'node:path';
import { trainStep } from './train_step_setup.mjs';

const args = process.argv.slice(2);
if (args.length < 5) throw new Error('usage: node bench/train_step_ab.mjs WIDTH IN_CHANNELS IMAGE_SIZE BATCH DIST_A [DIST_B ...]');
const [width, inChannels, imageSize, batch] = args.slice(0, 4).map(Number);
const builds = args.slice(4).map((d) => resolve(d));
const rounds = Number(process.env.ROUNDS ?? 6);

const sessions = [];
for (const dist of builds) {
  const { session, feeds } = await trainStep(dist, { width, inChannels, imageSize, batch });
  const out = await session.run(feeds); // warm-up; the loss shows both builds compute the same step
  sessions.push({ dist, session, feeds, ms: [], loss: out.loss.data[0] });
}
for (let r = 0; r < rounds; r++) {
  for (const s of sessions) {
    const t0 = performance.now();
    await s.session.run(s.feeds);
    s.ms.push(performance.now() - t0);
  }
}
for (const s of sessions) {
  const t = s.ms.sort((a, b) => a - b);
  console.log(`${s.dist}: median ${t[Math.floor(t.length / 2)].toFixed(1)} ms, min ${t[0].toFixed(1)} ms, loss ${s.loss}`);
}
