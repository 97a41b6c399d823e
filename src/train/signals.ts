// Ctrl-C (SIGINT) or SIGTERM (what Kubernetes, Slurm, systemd and `kill` send before killing) during training: the
// first one aborts the signal (the loop finishes its step, writes `last` and returns 'interrupted'; the command then
// exits 128 + the signal's number: 130 or 143); a second one restores the default action and re-raises it, so the
// process dies at once (no process.exit outside cli.ts).
export const STOP_SIGNALS = ['SIGINT', 'SIGTERM'] as const;
export type StopSignal = (typeof STOP_SIGNALS)[number];

export interface InterruptHandle {
  signal: AbortSignal;
  /** The signal that stopped the run (undefined while none came). */
  received(): StopSignal | undefined;
  /** 128 + the received signal's number (130 for SIGINT, 143 for SIGTERM). */
  exitCode(): number;
  dispose(): void;
}

const SIGNAL_NUMBERS: Record<StopSignal, number> = { SIGINT: 2, SIGTERM: 15 };

export function interruptOnSignals(onFirst: (sig: StopSignal) => void): InterruptHandle {
  const ac = new AbortController();
  let first: StopSignal | undefined;
  const handlers = new Map<StopSignal, () => void>();
  const dispose = () => {
    for (const [sig, h] of handlers) process.removeListener(sig, h);
  };
  for (const sig of STOP_SIGNALS) {
    const handler = () => {
      if (!ac.signal.aborted) {
        first = sig;
        ac.abort();
        onFirst(sig);
        return;
      }
      dispose();
      process.kill(process.pid, sig);
    };
    handlers.set(sig, handler);
    process.on(sig, handler);
  }
  return {
    signal: ac.signal,
    received: () => first,
    exitCode: () => 128 + SIGNAL_NUMBERS[first ?? 'SIGINT'],
    dispose,
  };
}

/** What the first stop signal prints. */
export function stopMessage(sig: StopSignal): string {
  return sig === 'SIGINT'
    ? 'Ctrl-C: finishing the current step and writing a checkpoint (Ctrl-C again quits at once)'
    : `${sig}: finishing the current step and writing a checkpoint (a second ${sig} quits at once)`;
}
