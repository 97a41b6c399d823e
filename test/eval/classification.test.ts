import { expect } from 'chai';
import { useEngine } from '../helpers.js';
import { ClassificationEvaluator, confusionCsv, topK } from '../../src/eval/classification.js';
import { csvRow } from '../../src/util/csv.js';

describe('eval/classification', () => {
  before(useEngine);

  it('topK ranks by descending score, ties → lower id first', () => {
    expect(topK([0.1, 0.5, 0.5, -1, 0.3], 3)).to.deep.equal([1, 2, 4]);
    expect(topK([1, 1, 1], 5)).to.deep.equal([0, 1, 2]);
  });

  it('top-1, top-k, per-class and mean per-class accuracy and the confusion matrix, by hand', () => {
    const ev = new ClassificationEvaluator(4, 2);
    ev.accumulate([5, 1, 0, 0], 0); // correct
    ev.accumulate([1, 5, 0, 0], 0); // wrong, 0 is 2nd → top-2 hit
    ev.accumulate([0, 5, 1, 0], 0); // wrong, 0 is 3rd/4th → miss
    ev.accumulate([0, 5, 1, 0], 1); // correct
    ev.accumulate([0, 0, 1, 5], 2); // wrong, 2 is 2nd
    const r = ev.compute();
    expect(r.count).to.equal(5);
    expect(r.k).to.equal(2);
    expect(r.top1).to.equal(40);
    expect(r.topK).to.equal(80);
    expect(r.support).to.deep.equal([3, 1, 1, 0]);
    expect(r.perClass).to.deep.equal([100 / 3, 100, 0, null]);
    expect(r.meanPerClass).to.be.closeTo((100 / 3 + 100 + 0) / 3, 1e-9);
    expect(r.confusion).to.deep.equal([
      [1, 2, 0, 0],
      [0, 1, 0, 0],
      [0, 0, 0, 1],
      [0, 0, 0, 0],
    ]);
  });

  it('caps k at the number of classes (top-5 of 2 classes is 100 %)', () => {
    const ev = new ClassificationEvaluator(2);
    ev.accumulate([0, 1], 0);
    expect(ev.compute()).to.include({ k: 2, top1: 0, topK: 100 });
  });

  it('rejects a label out of range and a wrong score count with one line', () => {
    const ev = new ClassificationEvaluator(3);
    expect(() => ev.accumulate([1, 2, 3], 3)).to.throw(/label 3 is out of range 0\.\.2/);
    expect(() => ev.accumulate([1, 2], 0)).to.throw(/expected 3 scores, found 2/);
  });

  it('writes the confusion matrix as CSV with quoted names', () => {
    expect(confusionCsv([[1, 2], [3, 4]], ['cat', 'big, "dog"'])).to.equal(
      'true\\predicted,cat,"big, ""dog"""\ncat,1,2\n"big, ""dog""",3,4\n',
    );
    expect(csvRow(['a', 1, null, undefined])).to.equal('a,1,,\n');
  });
});
