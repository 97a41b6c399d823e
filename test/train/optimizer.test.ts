import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import { TrainOptimizer, type Param } from '../../src/train/optimizer.js';
import { OptimizerSchema } from '../../src/recipes/schema.js';

/** Runs 4 steps of ours and of a tfjs reference optimizer on the same fixed gradients; returns both weights. */
function compare(config: object, reference: () => tf.Optimizer, lrMult = 1) {
  const init = tf.tensor2d([[0.5, -1.25, 2], [0.25, 0.75, -0.5]]);
  const grads = [[[0.1, -0.2, 0.3], [0.05, 0, -0.4]], [[-0.3, 0.1, 0.2], [0.2, -0.1, 0.0]], [[0.5, 0.5, -0.5], [-0.2, 0.3, 0.1]], [[0.01, -0.02, 0.2], [0.4, 0.1, -0.3]]];
  const ours = tf.variable(init.clone(), true, `ours${Math.random()}`);
  const ref = tf.variable(init.clone(), true, `ref${Math.random()}`);
  const opt = new TrainOptimizer(OptimizerSchema.parse(config));
  const refOpt = reference();
  const param: Param = { key: 'w', variable: ours, lrMult, decay: 0 };
  for (const g of grads) {
    const gt = tf.tensor2d(g);
    opt.apply([param], new Map([['w', gt]]), 0.1);
    refOpt.applyGradients({ [ref.name]: gt });
    gt.dispose();
  }
  const out = { ours: ours.arraySync() as number[][], ref: ref.arraySync() as number[][] };
  opt.dispose();
  refOpt.dispose();
  tf.dispose([init, ours, ref]);
  return out;
}

function expectClose(a: number[][], b: number[][], tol = 1e-6) {
  a.flat().forEach((v, i) => expect(v).to.be.closeTo(b.flat()[i], tol));
}

describe('train: optimizers agree with tfjs', function () {
  before(useEngine);

  it('plain SGD == tf.train.sgd', () => {
    const r = compare({ type: 'sgd', momentum: 0 }, () => tf.train.sgd(0.1));
    expectClose(r.ours, r.ref);
  });
  it('momentum SGD == tf.train.momentum (and Nesterov)', () => {
    let r = compare({ type: 'sgd', momentum: 0.9 }, () => tf.train.momentum(0.1, 0.9));
    expectClose(r.ours, r.ref);
    r = compare({ type: 'sgd', momentum: 0.8, nesterov: true }, () => tf.train.momentum(0.1, 0.8, true));
    expectClose(r.ours, r.ref);
  });
  it('Adam == tf.train.adam', () => {
    const r = compare({ type: 'adam', beta1: 0.9, beta2: 0.999, epsilon: 1e-7 }, () => tf.train.adam(0.1, 0.9, 0.999, 1e-7));
    expectClose(r.ours, r.ref, 1e-5);
  });
  it('an lr multiplier of 3 is the reference at 3× the rate', () => {
    const r = compare({ type: 'sgd', momentum: 0.9 }, () => tf.train.momentum(0.3, 0.9), 3);
    expectClose(r.ours, r.ref);
  });
  it('weight decay adds wd·w to the gradient; state round-trips', async () => {
    const w = tf.variable(tf.tensor1d([1, -2]));
    const opt = new TrainOptimizer(OptimizerSchema.parse({ type: 'sgd', momentum: 0.5 }));
    const p: Param = { key: 'k', variable: w, lrMult: 1, decay: 0.1 };
    const g = tf.tensor1d([0.5, 0.5]);
    opt.apply([p], new Map([['k', g]]), 1);
    // v = g + 0.1 w = [0.6, 0.3]; w = w - v
    expectClose([Array.from(w.dataSync())], [[0.4, -2.3]]);
    const state = await opt.getState();
    expect(state.slots).to.deep.equal([{ key: 'k', slot: 'velocity', shape: [2] }]);
    expect(Array.from(state.values)).to.deep.equal([Math.fround(0.6), Math.fround(0.3)]);
    const opt2 = new TrainOptimizer(OptimizerSchema.parse({ type: 'sgd', momentum: 0.5 }));
    opt2.setState(state, [p]);
    const w2 = tf.variable(w.clone());
    opt.apply([p], new Map([['k', g]]), 1);
    opt2.apply([{ ...p, variable: w2 }], new Map([['k', g]]), 1);
    expectClose([Array.from(w.dataSync())], [Array.from(w2.dataSync())]);
    opt.dispose();
    opt2.dispose();
    tf.dispose([w, w2, g]);
  });
});
