// The CLI tests run the built program (dist/), exactly as a user would; build it once before the suite
// (ADVRUN_SKIP_BUILD=1 skips this when dist/ is known to be current).
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  if (process.env.ADVRUN_SKIP_BUILD === '1') return;
  execFileSync('npx', ['tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
}
