// Learning-rate schedules as a pure function of the global step, so a resumed run gets exactly the rates it would
// have had. Epoch-based settings are converted with the steps per epoch; warm-up is linear from
// warmupStartFactor·(schedule's value) to the schedule's value.
import type { ScheduleConfig } from '../recipes/schema.js';

export interface ScheduleContext {
  baseLr: number;
  stepsPerEpoch: number;
  epochs: number;
}

/** The learning rate at 0-based global step `step`. */
export function learningRateAt(step: number, schedule: ScheduleConfig, ctx: ScheduleContext): number {
  const { baseLr, stepsPerEpoch, epochs } = ctx;
  const totalSteps = Math.max(1, stepsPerEpoch * epochs);
  const warmupSteps = Math.round(schedule.warmupEpochs * stepsPerEpoch);
  let lr: number;
  switch (schedule.type) {
    case 'constant':
      lr = baseLr;
      break;
    case 'step': {
      const epoch = Math.floor(step / stepsPerEpoch);
      const drops = typeof schedule.stepEpochs === 'number'
        ? Math.floor(epoch / schedule.stepEpochs)
        : schedule.stepEpochs.filter((e) => epoch >= e).length;
      lr = baseLr * Math.pow(schedule.gamma, drops);
      break;
    }
    case 'cosine': {
      const span = Math.max(1, totalSteps - warmupSteps);
      const t = Math.min(1, Math.max(0, step - warmupSteps) / span);
      lr = schedule.minLr + (baseLr - schedule.minLr) * 0.5 * (1 + Math.cos(Math.PI * t));
      break;
    }
  }
  if (step < warmupSteps) {
    const f = schedule.warmupStartFactor + (1 - schedule.warmupStartFactor) * (step / warmupSteps);
    lr *= f;
  }
  return lr;
}
