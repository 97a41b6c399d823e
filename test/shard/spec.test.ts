// Which shard a process runs: --shard, GAPCAM_SHARD, Kubernetes Indexed Jobs, Slurm arrays (the flag wins), and the
// contiguous partition of the dataset-order list.
import { expect } from 'chai';
import { describeShard, partFolderName, resolveShard, shardItems, shardRange } from '../../src/shard/spec.js';
import { UserError } from '../../src/errors.js';

function refuses(f: () => unknown, message: RegExp): void {
  try {
    f();
  } catch (err) {
    expect(err).to.be.instanceOf(UserError);
    expect((err as Error).message).to.match(message);
    return;
  }
  expect.fail(`expected a UserError matching ${message}`);
}

describe('shard/spec', () => {
  it('reads --shard i/n (0-based); off and no env mean not sharded', () => {
    expect(resolveShard({ shard: '2/5' }, {})).to.deep.equal({ index: 2, count: 5, source: '--shard' });
    expect(resolveShard({}, {})).to.equal(undefined);
    expect(resolveShard({ shard: 'off' }, { GAPCAM_SHARD: '1/2', JOB_COMPLETION_INDEX: '0', GAPCAM_SHARD_COUNT: '3' })).to.equal(undefined);
    refuses(() => resolveShard({ shard: '5/5' }, {}), /^--shard: shard index 5 is out of range for 5 shards \(indices are 0-based: 0\.\.4\)/);
    refuses(() => resolveShard({ shard: '1-3' }, {}), /^--shard: expected i\/n/);
    refuses(() => resolveShard({ shard: '0/0' }, {}), /shard count\): expected an integer ≥ 1, found '0'/);
    refuses(() => resolveShard({ shard: '0/2', shardCount: 2 }, {}), /^--shard-count: not with --shard/);
  });

  it('the flag wins over GAPCAM_SHARD, which wins over the schedulers', () => {
    const env = { GAPCAM_SHARD: '1/4', JOB_COMPLETION_INDEX: '3', GAPCAM_SHARD_COUNT: '8', SLURM_ARRAY_TASK_ID: '5', SLURM_ARRAY_TASK_COUNT: '6' };
    expect(resolveShard({ shard: '0/2' }, env)).to.deep.equal({ index: 0, count: 2, source: '--shard' });
    expect(resolveShard({}, env)).to.deep.equal({ index: 1, count: 4, source: 'GAPCAM_SHARD' });
    refuses(() => resolveShard({}, { GAPCAM_SHARD: '4/4' }), /^GAPCAM_SHARD: shard index 4 is out of range/);
  });

  it('Kubernetes Indexed Jobs: JOB_COMPLETION_INDEX with the count from --shard-count or GAPCAM_SHARD_COUNT', () => {
    expect(resolveShard({}, { JOB_COMPLETION_INDEX: '3', GAPCAM_SHARD_COUNT: '8' })).to.deep.equal({ index: 3, count: 8, source: 'JOB_COMPLETION_INDEX' });
    expect(resolveShard({ shardCount: 4 }, { JOB_COMPLETION_INDEX: '3', GAPCAM_SHARD_COUNT: '8' })).to.deep.equal({ index: 3, count: 4, source: 'JOB_COMPLETION_INDEX' });
    refuses(() => resolveShard({}, { JOB_COMPLETION_INDEX: '3' }), /^JOB_COMPLETION_INDEX=3 \(a Kubernetes Indexed Job\) gives the shard index but not the count/);
    refuses(() => resolveShard({ shardCount: 3 }, { JOB_COMPLETION_INDEX: '3' }), /shard index 3 is out of range for 3 shards/);
    refuses(() => resolveShard({ shardCount: 3 }, {}), /^--shard-count=3 without a shard index/);
  });

  it('Slurm arrays: index = ID − MIN, count = COUNT (or MAX − MIN + 1); steps and lists refused', () => {
    expect(resolveShard({}, { SLURM_ARRAY_TASK_ID: '2', SLURM_ARRAY_TASK_COUNT: '4', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '3' }))
      .to.deep.equal({ index: 2, count: 4, source: 'SLURM_ARRAY_TASK_ID' });
    expect(resolveShard({}, { SLURM_ARRAY_TASK_ID: '7', SLURM_ARRAY_TASK_MIN: '5', SLURM_ARRAY_TASK_MAX: '8' })).to.deep.equal({ index: 2, count: 4, source: 'SLURM_ARRAY_TASK_ID' });
    expect(resolveShard({}, { SLURM_ARRAY_TASK_ID: '1', SLURM_ARRAY_TASK_COUNT: '3' })).to.deep.equal({ index: 1, count: 3, source: 'SLURM_ARRAY_TASK_ID' });
    refuses(() => resolveShard({}, { SLURM_ARRAY_TASK_ID: '4', SLURM_ARRAY_TASK_COUNT: '3', SLURM_ARRAY_TASK_MIN: '0', SLURM_ARRAY_TASK_MAX: '4' }), /^Slurm array 0-4 has 3 tasks \(a step or a list\)/);
    refuses(() => resolveShard({}, { SLURM_ARRAY_TASK_ID: '1' }), /^SLURM_ARRAY_TASK_ID=1 without SLURM_ARRAY_TASK_COUNT or SLURM_ARRAY_TASK_MAX/);
    refuses(() => resolveShard({}, { SLURM_ARRAY_TASK_ID: 'x', SLURM_ARRAY_TASK_COUNT: '3' }), /^SLURM_ARRAY_TASK_ID: expected an integer ≥ 0, found 'x'/);
  });

  it('contiguous ranges that tile the list, computed from N, i and n alone', () => {
    for (const total of [0, 1, 7, 11, 100]) {
      for (const count of [1, 2, 3, 8, 13]) {
        let next = 0;
        const items = Array.from({ length: total }, (_, i) => i);
        const all: number[] = [];
        for (let index = 0; index < count; index++) {
          const { start, end } = shardRange(total, { index, count });
          expect(start).to.equal(next);
          expect(end - start).to.be.within(Math.floor(total / count), Math.ceil(total / count));
          next = end;
          all.push(...shardItems(items, { index, count, source: '--shard' }));
        }
        expect(next).to.equal(total);
        expect(all).to.deep.equal(items);
      }
    }
    expect(shardRange(11, { index: 1, count: 3 })).to.deep.equal({ start: 3, end: 7 });
    expect(partFolderName({ index: 3, count: 12 })).to.equal('shard-03-of-12');
    expect(describeShard({ index: 1, count: 3, source: 'SLURM_ARRAY_TASK_ID' })).to.equal('shard 1 of 3 (0-based, from SLURM_ARRAY_TASK_ID)');
  });
});
