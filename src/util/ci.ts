// Whether the process runs under CI: CI=true (or any value but "", "0", "false"), as CI services set it.
// In CI advrun prints no progress and no notes, only results and errors.
export function inCi(): boolean {
  const ci = process.env.CI?.trim().toLowerCase();
  return ci !== undefined && ci !== '' && ci !== '0' && ci !== 'false';
}
