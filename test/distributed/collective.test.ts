// TensorFlow's collective ops across two real processes on 127.0.0.1 (gapcam's patched engine build), the cluster
// spec parsing and the ServerDef bytes.
import { expect } from 'chai';
import { createRequire } from 'node:module';
import { resolveCluster } from '../../src/distributed/cluster.js';
import { serverDef } from '../../src/distributed/server-def.js';
import { UserError } from '../../src/errors.js';
import { freePorts, skipWithoutCollectives, startNode } from './cluster-helpers.js';

const require = createRequire(import.meta.url);
const { BinaryReader } = require('google-protobuf');

/** Decodes a message into field number → values (nested messages as Uint8Array), with google-protobuf's reader. */
function fields(bytes: Uint8Array): Map<number, Array<number | string | Uint8Array>> {
  const r = new BinaryReader(bytes);
  const out = new Map<number, Array<number | string | Uint8Array>>();
  while (r.nextField() && !r.isEndGroup()) {
    const f = r.getFieldNumber();
    const v = r.getWireType() === 0 ? r.readInt32() : r.readBytes();
    out.set(f, [...(out.get(f) ?? []), v]);
  }
  return out;
}
const text = (b: unknown) => Buffer.from(b as Uint8Array).toString('utf8');

describe('distributed: cluster spec', () => {
  it('reads TF_CONFIG and --workers/--task-index (the flags win)', () => {
    const env = { TF_CONFIG: JSON.stringify({ cluster: { worker: ['a:1', 'b:2', 'c:3'] }, task: { type: 'worker', index: 2 } }) };
    expect(resolveCluster({}, env)).to.deep.equal({ workers: ['a:1', 'b:2', 'c:3'], task: 2, source: 'TF_CONFIG' });
    expect(resolveCluster({ workers: 'x:5, y:6', taskIndex: 0 }, env)).to.deep.equal({ workers: ['x:5', 'y:6'], task: 0, source: '--workers' });
    expect(resolveCluster({}, {})).to.equal(undefined);
  });

  it('refuses bad specs with one line naming the problem', () => {
    const bad: Array<[Parameters<typeof resolveCluster>[0], NodeJS.ProcessEnv, RegExp]> = [
      [{ workers: 'a:1,b:2' }, {}, /--task-index/],
      [{ workers: 'a:1,b:2', taskIndex: 2 }, {}, /task index from 0 to 1.*got 2/],
      [{ workers: 'a,b:2', taskIndex: 0 }, {}, /host:port; got 'a'/],
      [{ workers: 'a:1,a:1', taskIndex: 0 }, {}, /listed twice/],
      [{ taskIndex: 1 }, {}, /--workers/],
      [{}, { TF_CONFIG: '{nope' }, /TF_CONFIG: expected JSON/],
      [{}, { TF_CONFIG: JSON.stringify({ cluster: { worker: ['a:1'], ps: ['b:2'] }, task: { type: 'worker', index: 0 } }) }, /'ps'/],
      [{}, { TF_CONFIG: JSON.stringify({ cluster: { worker: ['a:1'] }, task: { type: 'chief', index: 0 } }) }, /task.type/],
    ];
    for (const [flags, env, re] of bad) {
      expect(() => resolveCluster(flags, env), JSON.stringify([flags, env])).to.throw(UserError, re);
    }
  });

  it('writes the ServerDef TensorFlow expects, with the collective group leader', () => {
    const def = fields(serverDef({ workers: ['127.0.0.1:5000', '127.0.0.1:5001'], task: 1, source: '--workers' }));
    expect(text(def.get(2)![0])).to.equal('worker');
    expect(def.get(3)).to.deep.equal([1]);
    expect(text(def.get(5)![0])).to.equal('grpc');
    const job = fields(fields(def.get(1)![0] as Uint8Array).get(1)![0] as Uint8Array);
    expect(text(job.get(1)![0])).to.equal('worker');
    const tasks = job.get(2)!.map((e) => fields(e as Uint8Array)).map((m) => [m.get(1)?.[0] ?? 0, text(m.get(2)![0])]);
    expect(tasks).to.deep.equal([[0, '127.0.0.1:5000'], [1, '127.0.0.1:5001']]);
    const experimental = fields(fields(def.get(4)![0] as Uint8Array).get(16)![0] as Uint8Array);
    expect(text(experimental.get(1)![0])).to.equal('/job:worker/replica:0/task:0');
  });
});

describe('distributed: all-reduce across two processes (gRPC on 127.0.0.1)', function () {
  this.timeout(150_000);
  before(function () {
    skipWithoutCollectives(this);
  });

  it('CollectiveReduceV2 gives every worker the sum and the mean, and gatherJson every worker\'s value', async () => {
    const ports = await freePorts(2);
    const workers = ports.map((p) => `127.0.0.1:${p}`).join(',');
    const runs = [0, 1].map((i) => startNode(['test/distributed/allreduce-worker.ts', workers, String(i)]));
    const done = await Promise.all(runs.map((r) => r.done));
    for (const [i, d] of done.entries()) {
      expect(d.code, d.stderr).to.equal(0);
      expect(d.stderr).to.contain(`distributed: worker ${i} of 2 (grpc)`);
      const out = JSON.parse(d.stdout.trim().split('\n').pop()!);
      expect(out.rank).to.equal(i);
      expect(out.mean).to.deep.equal([1.5, 15, -0.5]);
      expect(out.sum).to.deep.equal([3, 30, -1]);
      expect(out.ints).to.deep.equal([3, 14]);
      expect(out.gathered, 'gatherJson').to.deep.equal([{ rank: 0, files: ['a.jpg'] }, { rank: 1, files: ['b/ünï.jpg', 'c.png'], note: 'tab\tend' }]);
      expect(out.device).to.equal(`/job:worker/replica:0/task:${i}/device:CPU:0`);
      expect(out.after).to.deep.equal([i + 2, 10 * (i + 1) + 1, 1 - i]);
    }
  });

  it('a killed worker: the other stops within the timeout with one line naming it, exit code 3', async () => {
    const ports = await freePorts(2);
    const workers = ports.map((p) => `127.0.0.1:${p}`).join(',');
    // Worker 0 is killed (and the test fails) if it has not stopped by itself 60 s after starting; its all-reduce
    // timeout is 8 s (allreduce-worker.ts).
    const w0 = startNode(['test/distributed/allreduce-worker.ts', workers, '0', 'hang'], {}, 60_000);
    const w1 = startNode(['test/distributed/allreduce-worker.ts', workers, '1', 'hang']);
    // Worker 1 is killed once it has printed its results (it then waits, so worker 0 is inside the next all-reduce).
    await new Promise<void>((resolve) => {
      w1.child.stdout!.on('data', (d) => { if (String(d).includes('"rank":1')) resolve(); });
      void w1.done.then(() => resolve());
    });
    w1.child.kill('SIGKILL');
    const d0 = await w0.done;
    expect(d0.code, d0.stderr).to.equal(3);
    const lines = d0.stderr.split('\n').filter((l) => l.startsWith('gapcam:'));
    expect(lines, d0.stderr).to.have.length(1);
    expect(lines[0]).to.match(/worker 1 \(127\.0\.0\.1:\d+\) did not answer/);
    await w1.done;
  });
});
