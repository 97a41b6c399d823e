// The command registry: a new command is one file in src/commands plus one line here.
import type { GapcamCommand } from './common.js';
import { engineCommand } from './engine.js';
import { datasetsCommand } from './datasets.js';
import { featuresCommand } from './features.js';
import { svmCommand } from './svm.js';
import { evaluateCommand } from './evaluate.js';

export const commands: GapcamCommand[] = [
  engineCommand,
  datasetsCommand,
  featuresCommand,
  svmCommand,
  evaluateCommand,
];
