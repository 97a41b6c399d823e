// Engine selection: explicit engines never fall back, `gapcam engine` reports the native engine, the engine starts
// once per process.
import * as tf from '@tensorflow/tfjs';
import { expect } from 'chai';
import { createRequire } from 'node:module';
import { useEngine } from '../helpers.js';
import { currentEngine, describeEngine, parseEngineRequest, startEngine } from '../../src/engine.js';
import { UserError } from '../../src/errors.js';
import { gapcamStderr, runCli } from './run-cli.js';

const require = createRequire(import.meta.url);
const gpuPackageInstalled = (() => {
  try {
    require.resolve('@tensorflow/tfjs-node-gpu');
    return true;
  } catch {
    return false;
  }
})();

describe('engine: selection and reporting', function () {
  before(useEngine);

  it('`gapcam engine` reports the tensorflow engine with TensorFlow 2.21', () => {
    const r = runCli(['engine']);
    expect(r.code, r.stderr).to.equal(0);
    const [summary, ...facts] = r.stdout.trimEnd().split('\n');
    expect(summary).to.match(/^engine tensorflow \(tfjs 4\.22\.\d+, TensorFlow 2\.21\.\d+, \d+ threads?\)/);
    expect(facts.join('\n')).to.match(/TensorFlow:\s+2\.21\./);
    expect(facts.join('\n')).to.match(/not tensorflow-gpu: /);
    expect(gapcamStderr(r.stderr), 'stderr').to.deep.equal([]);
  });

  it('`gapcam engine --backend wasm --json` starts the wasm engine and says so', () => {
    const r = runCli(['engine', '--backend', 'wasm', '--json']);
    expect(r.code, r.stderr).to.equal(0);
    const info = JSON.parse(r.stdout);
    expect(info.name).to.equal('wasm');
    expect(info.tensorflowVersion).to.equal(undefined);
  });

  it('an explicit engine that cannot start is a one-line user error (exit 2), never a fallback', function () {
    if (gpuPackageInstalled) this.skip(); // on a GPU machine tensorflow-gpu may legitimately start
    const r = runCli(['engine', '--backend', 'tensorflow-gpu']);
    expect(r.code).to.equal(2);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^gapcam: --backend tensorflow-gpu: cannot start: /);
    expect(r.stdout).to.equal('');
  });

  it('starts once per process; asking for another engine later is a UserError', async () => {
    const info = currentEngine();
    expect(info?.name).to.equal('tensorflow');
    expect(await startEngine('auto')).to.equal(info);
    expect(await startEngine('tensorflow')).to.equal(info);
    let caught: unknown;
    try {
      await startEngine('wasm');
    } catch (err) {
      caught = err;
    }
    expect(caught).to.be.instanceOf(UserError);
    expect((caught as Error).message).to.match(/'tensorflow' is already running/);
    expect(tf.getBackend()).to.equal('tensorflow');
  });

  it('parses --backend and GAPCAM_BACKEND', () => {
    const saved = process.env.GAPCAM_BACKEND;
    try {
      delete process.env.GAPCAM_BACKEND;
      expect(parseEngineRequest(undefined)).to.equal('auto');
      expect(parseEngineRequest('wasm')).to.equal('wasm');
      process.env.GAPCAM_BACKEND = 'cpu';
      expect(parseEngineRequest(undefined)).to.equal('cpu');
      expect(parseEngineRequest('tensorflow')).to.equal('tensorflow');
      expect(() => parseEngineRequest('gpu')).to.throw(UserError, /--backend: expected one of/);
    } finally {
      if (saved === undefined) delete process.env.GAPCAM_BACKEND;
      else process.env.GAPCAM_BACKEND = saved;
    }
  });

  it('describes the engine in one line', () => {
    const line = describeEngine(currentEngine()!);
    expect(line).to.not.include('\n');
    expect(line).to.match(/^engine tensorflow \(tfjs 4\.22/);
  });
});
