// Ctrl-C during training: the first SIGINT aborts the signal (the loop finishes its step, writes `last` and
// returns 'interrupted'; the command then exits 130); a second SIGINT restores the default action and re-raises
// it, so the process dies at once (no process.exit outside cli.ts).
export interface InterruptHandle {
  signal: AbortSignal;
  dispose(): void;
}

export function interruptOnSigint(onFirst: () => void): InterruptHandle {
  const ac = new AbortController();
  const handler = () => {
    if (!ac.signal.aborted) {
      ac.abort();
      onFirst();
      return;
    }
    process.removeListener('SIGINT', handler);
    process.kill(process.pid, 'SIGINT');
  };
  process.on('SIGINT', handler);
  return { signal: ac.signal, dispose: () => process.removeListener('SIGINT', handler) };
}

/** The exit status of a command interrupted by Ctrl-C (128 + SIGINT). */
export const INTERRUPTED_EXIT_CODE = 130;
