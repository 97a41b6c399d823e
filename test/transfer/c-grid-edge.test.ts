// transfer warns when cross-validation picks C at the end of its grid.
import { expect } from 'chai';
import { cGridEdgeWarning } from '../../src/transfer/run.js';

describe('transfer: C at the edge of its grid', () => {
  it('says how many splits chose the smallest or largest C, and nothing when all are inside', () => {
    const grid = [0.01, 0.1, 1, 10];
    expect(cGridEdgeWarning([0.1, 1, 1], grid)).to.equal(undefined);
    expect(cGridEdgeWarning([10, 1, 10], grid)).to.equal('cross-validation chose the largest C (10) in 2 of 3 split(s): the best C may lie outside the grid; widen svm.cGrid');
    expect(cGridEdgeWarning([0.01, 10], grid)).to.match(/smallest C \(0\.01\) in 1 and the largest C \(10\) in 1 of 2/);
    expect(cGridEdgeWarning([1], [1])).to.equal(undefined);
  });
});
