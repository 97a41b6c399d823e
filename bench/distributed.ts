// Data-parallel training on TensorFlow's gRPC runtime vs one process (a benchmark, not a test):
//   npx tsx bench/distributed.ts [--steps 10] [--batch 32]
// Trains vgg-gap-tiny (vgg-tiny-bn at 64×64, synchronised BatchNorm) on in-memory random batches of global size
// --batch, as (a) 1 worker with 2 TensorFlow threads and (b) 2 workers with 1 thread each on 127.0.0.1 ports, and
// reports training images/s (global batch per step time, after 2 warm-up steps), the share of the step time spent
// inside all-reduces and how many all-reduces a step takes. On one 2-core machine (b) is loopback: both workers share the same two cores, so it
// measures the cost of the collective machinery, not a scale-out.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs';

const WARMUP = 2;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

interface WorkerResult { imagesPerSec: number; reduceShare: number; reducesPerStep?: number; engine: string }

/** One process: `--worker <workers|single> <task>`; prints a WorkerResult as JSON. */
async function worker(workers: string, task: number): Promise<void> {
  const [{ startEngine, describeEngine }, { joinCluster }, { DataParallel }, { loadRecipe }, { buildRecipeModel }, { createRandom },
    { memoryData }, { train }] = await Promise.all([
    import('../src/engine.js'), import('../src/distributed/collective.js'), import('../src/distributed/data-parallel.js'),
    import('../src/recipes/loader.js'), import('../src/train/run.js'), import('../src/train/rng.js'), import('../src/train/data.js'),
    import('../src/train/trainer.js')]);
  const info = await startEngine('tensorflow');
  const group = workers === 'single' ? undefined : await joinCluster({ workers: workers.split(','), task, source: '--workers' });
  const steps = Number(arg('steps', '10'));
  const batch = Number(arg('batch', '32'));
  const recipe = { ...loadRecipe('vgg-gap-tiny'), batchSize: batch, epochs: 1 };
  const classes = Array.from({ length: 10 }, (_, i) => `c${i}`);
  const { cam, headLayers } = await buildRecipeModel(recipe, classes, createRandom(1));
  const n = batch * (steps + WARMUP);
  const images = tf.randomNormal([n, 64, 64, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
  const data = memoryData({ images, labels: Array.from({ length: n }, (_, i) => i % 10), numClasses: 10, batchSize: batch, shuffle: false });
  const runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'gapcam-bench-dist-'));
  let t0 = 0, r0 = 0, t1 = 0, r1 = 0, c0 = 0, c1 = 0;
  const progress = {
    log() {}, startEpoch() {}, endEpoch() {}, stop() {},
    step(s: { globalStep: number }) {
      if (s.globalStep === WARMUP) [t0, r0, c0] = [performance.now(), group?.reduceMs ?? 0, group?.reduceCalls ?? 0];
      if (s.globalStep === WARMUP + steps) [t1, r1, c1] = [performance.now(), group?.reduceMs ?? 0, group?.reduceCalls ?? 0];
    },
  };
  try {
    await train({ recipe, cam, data, runDir, headLayers, maxSteps: steps + WARMUP, progress: progress as never,
      parallel: group && new DataParallel(group) });
  } finally {
    fs.rmSync(runDir, { recursive: true, force: true });
  }
  const result: WorkerResult = { imagesPerSec: (steps * batch) / ((t1 - t0) / 1000), reduceShare: (r1 - r0) / (t1 - t0), reducesPerStep: (c1 - c0) / steps,
    engine: describeEngine(info) };
  console.log(JSON.stringify(result));
  process.exit(0);
}

async function freePorts(k: number): Promise<number[]> {
  const servers = await Promise.all(Array.from({ length: k }, () => new Promise<net.Server>((res) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => res(s));
  })));
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

function run(args: string[], threads: number): Promise<WorkerResult> {
  const env = { ...process.env, TF_NUM_INTRAOP_THREADS: String(threads), TF_NUM_INTEROP_THREADS: String(threads), TF_CPP_MIN_LOG_LEVEL: '2' };
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args, ...process.argv.slice(2)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '', err = '';
  child.stdout.on('data', (d) => { out += d; });
  child.stderr.on('data', (d) => { err += d; });
  const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
  return new Promise((resolve, reject) => child.on('close', (code) => {
    clearTimeout(timer);
    if (code !== 0) reject(new Error(`worker ${args.join(' ')} exited with ${code}: ${err.trim().split('\n').pop()}`));
    else resolve(JSON.parse(out.trim().split('\n').pop()!));
  }));
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--worker');
  if (i >= 0) return worker(process.argv[i + 1], Number(process.argv[i + 2]));
  const single = await run(['--worker', 'single', '0'], 2);
  const workers = (await freePorts(2)).map((p) => `127.0.0.1:${p}`).join(',');
  const [w0, w1] = await Promise.all([0, 1].map((t) => run(['--worker', workers, String(t)], 1)));
  const load = os.loadavg()[0].toFixed(1);
  console.log(`vgg-gap-tiny (vgg-tiny-bn, 64×64), global batch ${arg('batch', '32')}, ${arg('steps', '10')} timed steps, ` +
    `in-memory data; LOOPBACK on one ${os.cpus().length}-core machine (load average ${load}):`);
  console.log(`  1 worker  × 2 threads: ${single.imagesPerSec.toFixed(1)} img/s`);
  console.log(`  2 workers × 1 thread : ${w0.imagesPerSec.toFixed(1)} img/s (all-reduce ${(100 * w0.reduceShare).toFixed(1)} % of the ` +
    `step time on worker 0, ${(100 * w1.reduceShare).toFixed(1)} % on worker 1; ${w0.reducesPerStep} all-reduces per step; gRPC over 127.0.0.1)`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
