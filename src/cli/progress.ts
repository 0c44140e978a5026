// Progress display for long work: a bar with ETA on a TTY; plain epoch lines on a pipe; nothing in CI
// (CI=true) or with --json (those get the final line or JSON and the files only).

import cliProgress from 'cli-progress';
import type { EpochMetrics, Reporter } from '../train/loop.js';
import { inCi } from '../util/ci.js';

export function interactive(json: boolean): boolean {
  return !json && !!process.stderr.isTTY && !inCi();
}

export function quiet(json: boolean): boolean {
  return json || inCi();
}

export function trainReporter(json: boolean): Reporter {
  const log = (m: string) => { if (!quiet(json)) process.stderr.write(`${m}\n`); };
  if (!interactive(json)) {
    return {
      start() {}, batch() {}, stop() {}, log,
      epoch: (m) => log(`epoch ${m.epoch + 1}: ${summary(m)}`),
    };
  }
  const bar = new cliProgress.SingleBar({
    format: 'epoch {epochs} |{bar}| {percentage}% batch {value}/{total} loss {loss} | ETA {eta_formatted}',
    stream: process.stderr, hideCursor: true, etaBuffer: 50,
  }, cliProgress.Presets.shades_classic);
  let total = 0, perEpoch = 0, epochs = 0;
  return {
    start(e, nb, first) { epochs = e; perEpoch = nb; total = (e - first) * nb; bar.start(total, 0, { epochs: `${first + 1}/${e}`, loss: '-' }); },
    batch(epoch, _i, loss) { bar.increment(1, { epochs: `${epoch + 1}/${epochs}`, loss: loss.toFixed(3) }); },
    epoch(m) { bar.stop(); process.stderr.write(`epoch ${m.epoch + 1}: ${summary(m)}\n`); if (m.epoch + 1 < epochs) bar.start(total, bar.getProgress() * total, {}); },
    log(m) { process.stderr.write(`${m}\n`); },
    stop() { bar.stop(); void perEpoch; },
  };
}

function summary(m: EpochMetrics): string {
  const pct = (v: number) => `${(100 * v).toFixed(1)}%`;
  return `loss ${m.train_loss.toFixed(4)} train ${pct(m.train_acc)} | val clean ${pct(m.val_clean_acc)}${m.val_robust_acc === null ? '' : ` robust ${pct(m.val_robust_acc)}`} | lr ${m.lr.toPrecision(3)} | ${m.time_s.toFixed(1)}s`;
}
