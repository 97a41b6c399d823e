// The command registry: a new command is one file in src/commands plus one line here.
import type { GapcamCommand } from './common.js';
import { engineCommand } from './engine.js';
import { datasetsCommand } from './datasets.js';
import { trainCommand } from './train.js';
import { recipesCommand } from './recipes.js';
import { demoCommand } from './demo.js';
import { featuresCommand } from './features.js';
import { svmCommand } from './svm.js';
import { transferCommand } from './transfer.js';
import { evaluateCommand } from './evaluate.js';
import { camCommand } from './cam.js';
import { modelCommand } from './model.js';
import { modelsCommand } from './models.js';
import { mergeCommand } from './merge.js';

export const commands: GapcamCommand[] = [
  engineCommand,
  datasetsCommand,
  trainCommand,
  recipesCommand,
  demoCommand,
  featuresCommand,
  svmCommand,
  transferCommand,
  evaluateCommand,
  camCommand,
  modelCommand,
  modelsCommand,
  mergeCommand,
];
