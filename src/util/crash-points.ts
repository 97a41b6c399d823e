// Test-only crash points: with GAPCAM_TEST_CRASH_AT=<point> the process kills itself with SIGKILL the first time it
// reaches that point, so a test reproduces `kill -9` at an exact moment of a write (no timing races). Unset (always,
// outside tests): a string comparison and nothing else.
export function crashPoint(point: string): void {
  if (process.env.GAPCAM_TEST_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}
