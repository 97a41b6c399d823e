// Progress display: a cli-progress bar on a terminal (epoch, step, loss, accuracy, images/s, ETA), plain lines
// when the output is not a terminal (a line every ~10 % of an epoch and one per epoch).
import cliProgress from 'cli-progress';

export interface StepInfo {
  epoch: number; // 1-based
  epochs: number;
  stepInEpoch: number; // 1-based, steps done in this epoch
  stepsPerEpoch: number;
  globalStep: number;
  loss: number;
  acc: number; // running accuracy over the epoch so far
  lr: number;
  imagesPerSec: number;
}

export interface EpochInfo {
  epoch: number;
  epochs: number;
  loss: number;
  acc: number;
  valLoss?: number;
  valAcc?: number;
  seconds: number;
  imagesPerSec: number;
  best: boolean;
}

export interface Progress {
  startEpoch(epoch: number, epochs: number, stepsPerEpoch: number, startStep: number): void;
  step(info: StepInfo): void;
  endEpoch(info: EpochInfo): void;
  /** A message that must not be garbled by the bar. */
  log(line: string): void;
  stop(): void;
}

const pct = (v: number | undefined) => (v === undefined ? '-' : (v * 100).toFixed(1) + '%');

export function describeEpoch(e: EpochInfo): string {
  return `epoch ${e.epoch}/${e.epochs}: loss ${e.loss.toFixed(4)} acc ${pct(e.acc)}` +
    (e.valAcc !== undefined ? ` | val loss ${e.valLoss?.toFixed(4)} top-1 ${pct(e.valAcc)}` : '') +
    ` | ${e.imagesPerSec.toFixed(1)} img/s, ${e.seconds.toFixed(1)} s${e.best ? ' (best)' : ''}`;
}

export class SilentProgress implements Progress {
  startEpoch(): void {}
  step(): void {}
  endEpoch(): void {}
  log(): void {}
  stop(): void {}
}

export class LineProgress implements Progress {
  private every = 1;
  constructor(private readonly write: (s: string) => void = (s) => process.stderr.write(s)) {}
  startEpoch(epoch: number, epochs: number, stepsPerEpoch: number): void {
    this.every = Math.max(1, Math.round(stepsPerEpoch / 10));
    void epoch; void epochs;
  }
  step(i: StepInfo): void {
    if (i.stepInEpoch % this.every !== 0 && i.stepInEpoch !== i.stepsPerEpoch) return;
    this.write(`epoch ${i.epoch}/${i.epochs} step ${i.stepInEpoch}/${i.stepsPerEpoch} (global ${i.globalStep}): loss ${i.loss.toFixed(4)} ` +
      `acc ${pct(i.acc)} lr ${i.lr.toPrecision(3)} ${i.imagesPerSec.toFixed(1)} img/s\n`);
  }
  endEpoch(e: EpochInfo): void {
    this.write(describeEpoch(e) + '\n');
  }
  log(line: string): void {
    this.write(line + '\n');
  }
  stop(): void {}
}

export class BarProgress implements Progress {
  private bar?: cliProgress.SingleBar;
  private readonly stream = process.stderr;
  private epoch?: { epoch: number; epochs: number; total: number; value: number };

  private open(value: number): void {
    const e = this.epoch!;
    this.bar = new cliProgress.SingleBar({
      stream: this.stream,
      format: 'epoch {epoch}/{epochs} {bar} {value}/{total} | loss {loss} acc {acc} | {ips} img/s | ETA {eta_formatted}',
      hideCursor: true,
      clearOnComplete: true,
      etaBuffer: 20,
    }, cliProgress.Presets.shades_classic);
    this.bar.start(e.total, value, { epoch: e.epoch, epochs: e.epochs, loss: '-', acc: '-', ips: '-' });
  }

  startEpoch(epoch: number, epochs: number, stepsPerEpoch: number, startStep: number): void {
    this.bar?.stop();
    this.epoch = { epoch, epochs, total: stepsPerEpoch, value: startStep };
    this.open(startStep);
  }
  step(i: StepInfo): void {
    if (!this.bar && this.epoch) this.open(this.epoch.value);
    if (this.epoch) this.epoch.value = i.stepInEpoch;
    this.bar?.update(i.stepInEpoch, { loss: i.loss.toFixed(4), acc: pct(i.acc), ips: i.imagesPerSec.toFixed(1) });
  }
  endEpoch(e: EpochInfo): void {
    this.bar?.stop();
    this.bar = undefined;
    this.epoch = undefined;
    this.stream.write(describeEpoch(e) + '\n');
  }
  /** Closes the bar (it reopens at the next step), then prints the line. */
  log(line: string): void {
    this.bar?.stop();
    this.bar = undefined;
    this.stream.write(line + '\n');
  }
  stop(): void {
    this.bar?.stop();
    this.bar = undefined;
    this.epoch = undefined;
  }
}

/** The bar on a terminal, plain lines otherwise. */
export function consoleProgress(): Progress {
  return process.stderr.isTTY ? new BarProgress() : new LineProgress();
}

/** "tensorflow (TensorFlow 2.21.0, 2 threads)" for reports. */
export function describeEngineShort(e: { name: string; tensorflowVersion?: string; threads: number }): string {
  return `${e.name} (${e.tensorflowVersion ? `TensorFlow ${e.tensorflowVersion}, ` : ''}${e.threads} thread${e.threads === 1 ? '' : 's'})`;
}
