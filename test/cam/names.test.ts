// Names users type and names gapcam writes: did-you-mean for CAM methods, class names and choice values; one
// distinguishable file name per CAM method.
import { expect } from 'chai';
import { METHOD_NAMES, createCamMethod } from '../../src/cam/registry.js';
import { methodFileName, resolveClassToken } from '../../src/cam/service.js';
import { closest, didYouMean } from '../../src/util/did-you-mean.js';
import { UserError } from '../../src/errors.js';
import { runMain } from '../engine/run-cli.js';
import * as tf from '@tensorflow/tfjs';

describe('cam: names (did-you-mean, file names)', () => {
  it('every method has its own file name (gradcam++ is gradcampp, not gradcam__)', () => {
    const names = METHOD_NAMES.map(methodFileName);
    expect(new Set(names).size).to.equal(METHOD_NAMES.length);
    expect(methodFileName('gradcam++')).to.equal('gradcampp');
    expect(names.every((n) => /^[A-Za-z0-9._-]+$/.test(n))).to.equal(true);
  });

  it('suggests the closest method, class and choice', async () => {
    expect(closest('gradcm', METHOD_NAMES)).to.equal('gradcam');
    expect(closest('layrecam', METHOD_NAMES)).to.equal('layercam');
    expect(didYouMean('zzzzzz', METHOD_NAMES)).to.equal('');
    expect(() => createCamMethod('scorcam', { model: tf.sequential() })).to.throw(UserError, /did you mean 'scorecam'\?$/);
    expect(() => resolveClassToken('walaby', ['kangaroo', 'wallaby', 'raccoon'])).to.throw(UserError, /did you mean 'wallaby'\?$/);
    expect(() => resolveClassToken('xyz', ['kangaroo', 'wallaby'])).to.throw(UserError, /not a class of the model \(expected[^)]*\)$/);
    const r = await runMain(['cam', 'm', 'x.jpg', '--out', '/tmp/x', '--split', 'tset']);
    expect(r.code).to.equal(2);
    expect(r.stderr.trim()).to.equal("gapcam: --split: expected one of test, train, val; got 'tset'; did you mean 'test'?");
  });
});
