// Classification scores of SVM predictions.

export interface ClassificationScores {
  count: number;
  correct: number;
  accuracy: number;
  /** Mean over the classes that have at least one test row of that class's accuracy (recall). */
  meanPerClassAccuracy: number;
  perClass: { classId: number; count: number; correct: number; accuracy: number }[];
}

export function scorePredictions(truth: ArrayLike<number>, predicted: ArrayLike<number>, numClasses: number): ClassificationScores {
  const count = new Array<number>(numClasses).fill(0);
  const hit = new Array<number>(numClasses).fill(0);
  let correct = 0;
  for (let i = 0; i < truth.length; i++) {
    count[truth[i]]++;
    if (truth[i] === predicted[i]) {
      hit[truth[i]]++;
      correct++;
    }
  }
  const perClass = count.map((c, k) => ({ classId: k, count: c, correct: hit[k], accuracy: c ? hit[k] / c : NaN }));
  const present = perClass.filter((p) => p.count > 0);
  return {
    count: truth.length,
    correct,
    accuracy: truth.length ? correct / truth.length : NaN,
    meanPerClassAccuracy: present.length ? present.reduce((a, p) => a + p.accuracy, 0) / present.length : NaN,
    perClass,
  };
}
