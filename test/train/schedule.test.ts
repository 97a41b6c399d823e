import { expect } from 'chai';
import { learningRateAt } from '../../src/train/schedule.js';
import { ScheduleSchema } from '../../src/recipes/schema.js';

const ctx = { baseLr: 0.1, stepsPerEpoch: 10, epochs: 10 };
const at = (step: number, s: object) => learningRateAt(step, ScheduleSchema.parse(s), ctx);

describe('train: learning-rate schedules', () => {
  it('constant', () => {
    expect(at(0, {})).to.equal(0.1);
    expect(at(99, {})).to.equal(0.1);
  });
  it('step every N epochs and at milestones', () => {
    expect(at(29, { type: 'step', stepEpochs: 3 })).to.be.closeTo(0.1, 1e-12);
    expect(at(30, { type: 'step', stepEpochs: 3 })).to.be.closeTo(0.01, 1e-12);
    expect(at(60, { type: 'step', stepEpochs: 3 })).to.be.closeTo(0.001, 1e-12);
    expect(at(49, { type: 'step', stepEpochs: [5, 8], gamma: 0.5 })).to.be.closeTo(0.1, 1e-12);
    expect(at(50, { type: 'step', stepEpochs: [5, 8], gamma: 0.5 })).to.be.closeTo(0.05, 1e-12);
    expect(at(80, { type: 'step', stepEpochs: [5, 8], gamma: 0.5 })).to.be.closeTo(0.025, 1e-12);
  });
  it('cosine from lr to minLr over the run', () => {
    expect(at(0, { type: 'cosine', minLr: 0.001 })).to.be.closeTo(0.1, 1e-12);
    expect(at(50, { type: 'cosine', minLr: 0.001 })).to.be.closeTo(0.001 + 0.099 * 0.5, 1e-12);
    expect(at(100, { type: 'cosine', minLr: 0.001 })).to.be.closeTo(0.001, 1e-12);
  });
  it('linear warm-up, then the schedule (cosine counted after the warm-up)', () => {
    const s = { type: 'cosine', warmupEpochs: 2, warmupStartFactor: 0.1 };
    expect(at(0, s)).to.be.closeTo(0.01, 1e-12);
    expect(at(10, s)).to.be.closeTo(0.1 * (0.1 + 0.9 * 0.5), 1e-12);
    expect(at(20, s)).to.be.closeTo(0.1, 1e-12);
    expect(at(60, s)).to.be.closeTo(0.05, 1e-12);
  });
});
