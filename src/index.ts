// The library API: typed exports, grown as modules land.
export { startEngine, describeEngine, currentEngine, type EngineInfo, type EngineName } from './engine.js';
export { UserError } from './errors.js';
