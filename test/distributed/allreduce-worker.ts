// One worker of the 2-process all-reduce test: joins the cluster given on the command line and prints the results
// of a few collectives as JSON. Usage: allreduce-worker.ts <host:port,…> <task> [stop-after]
import * as tf from '@tensorflow/tfjs';
import { startEngine, describeEngine } from '../../src/engine.js';
import { joinCluster } from '../../src/distributed/collective.js';
import { exitOnUserError } from './cluster-helpers.js';

const [workers, task, stopAfter] = process.argv.slice(2);
const info = await startEngine('tensorflow');
const group = await joinCluster({ workers: workers.split(','), task: Number(task), source: '--workers' }, { timeoutSeconds: 8 });
process.stderr.write(describeEngine(info) + '\n');
try {
  await group.barrier();
  const rank = group.rank;
  const x = tf.tensor1d([rank + 1, 10 * (rank + 1), -rank]);
  const mean = Array.from(await group.allReduce(x, 'mean').data());
  const sum = Array.from(await group.allReduce(x, 'sum').data());
  const ints = await group.sumNumbers([rank + 1, 7], 'int32');
  const after = tf.add(x, 1); // tensors made after enabling land on the renamed device
  // worker 1 sends more, and text beyond ASCII
  const gathered = await group.gatherJson(rank === 0 ? { rank, files: ['a.jpg'] } : { rank, files: ['b/ünï.jpg', 'c.png'], note: 'tab\tend' });
  console.log(JSON.stringify({ rank, mean, sum, ints, gathered, after: Array.from(await after.data()), device: group.device }));
  if (stopAfter === 'hang' && rank === 1) await new Promise((r) => setTimeout(r, 60_000));
  if (stopAfter === 'hang') {
    await group.sumNumbers([1]);
    console.log('unexpected: the all-reduce completed');
  }
} catch (err) {
  exitOnUserError(err);
}
process.exit(0);
