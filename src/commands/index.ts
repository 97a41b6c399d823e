// The command registry: a new command is one file in src/commands plus one line here.
import type { GapcamCommand } from './common.js';
import { engineCommand } from './engine.js';

export const commands: GapcamCommand[] = [
  engineCommand,
];
