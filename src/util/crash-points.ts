// Test-only crash points: with GAPCAM_TEST_CRASH_AT=<point> the process kills itself with SIGKILL the first time it
// reaches that point, so a test reproduces `kill -9` at an exact moment of a write (no timing races). Unset (always,
// outside tests): a check and a string comparison, nothing else.
// In-process tests can instead watch every point pass (setCrashPointHook), e.g. to copy a folder as a kill there
// would leave it.
let hook: ((point: string) => void) | undefined;

export function crashPoint(point: string): void {
  hook?.(point);
  if (process.env.GAPCAM_TEST_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

/** Test-only: calls `h` at every crash point reached (undefined: none). */
export function setCrashPointHook(h: ((point: string) => void) | undefined): void {
  hook = h;
}
