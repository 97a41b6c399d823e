// The README's "Use as a library" example, run as it stands in a fresh Node process (so nothing has started an
// engine before it), from a temporary working folder. Two substitutions only: `from 'gapcam'` points at this
// checkout's src/index.ts (tests run from source), and `../shared/` at the shared test material.
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { darknetTinyDir, makeTempDir, sharedDir } from '../helpers.js';
import { projectRoot } from '../../src/paths.js';

/** The ```js block after the library-example marker in README.md. */
export function readmeExample(): string {
  const readme = fs.readFileSync(path.join(projectRoot, 'README.md'), 'utf8');
  const m = /<!-- library-example:[^>]*-->\s*```js\n([\s\S]*?)```/.exec(readme);
  if (!m) throw new Error('README.md: no library-example block');
  return m[1];
}

describe('README: Use as a library', function () {
  this.timeout(120_000);

  it('the example runs: wallaby, the CLI box, maps at 224×224 and 450×319, cam.png, on the native engine', function () {
    if (!fs.existsSync(darknetTinyDir)) this.skip();
    const code = readmeExample()
      .replace(/from 'gapcam'/g, `from '${path.join(projectRoot, 'src', 'index.ts')}'`)
      .replaceAll("'../shared/", `'${sharedDir}/`) +
      `\nconst { currentEngine } = await import('${path.join(projectRoot, 'src', 'engine.ts')}');\nconsole.log('engine=' + currentEngine()?.name);\n`;
    const dir = makeTempDir();
    fs.writeFileSync(path.join(dir, 'example.mjs'), code);
    const env = { ...process.env };
    delete env.GAPCAM_BACKEND;
    const r = spawnSync(process.execPath, ['--import', path.join(projectRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs'), 'example.mjs'],
      { cwd: dir, encoding: 'utf8', env, timeout: 100_000 });
    expect(r.status, r.stderr).to.equal(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).to.match(/^wallaby 0\.\d{3} \[ \d+, \d+, \d+, \d+ \]/);
    expect(lines[0]).to.include('224x224 450x319');
    expect(lines.at(-1)).to.match(/^engine=tensorflow/);
    expect(fs.readFileSync(path.join(dir, 'cam.png')).subarray(1, 4).toString()).to.equal('PNG');
  });

  it('index.ts exports the short path and the documented types, not the internals', async () => {
    const api = await import('../../src/index.js');
    for (const name of ['loadCam', 'CamExplainer', 'camBox', 'startEngine', 'ensureEngine', 'renderOverlay', 'runTraining', 'TensorBoardSink', 'runCam', 'METHOD_NAMES']) {
      expect(api, name).to.have.property(name);
    }
    for (const internal of ['installOneDnnKernels', 'registerWasmTrainingKernels', 'FusedGradients', 'createTrainStep', 'oneDnnKernels', 'tunedEngineEnv']) {
      expect(api, internal).to.not.have.property(internal);
    }
    const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { exports: Record<string, unknown> };
    expect(Object.keys(pkg.exports)).to.include.members(['.', './internal/*']);
  });
});

describe('README: environment variables', () => {
  it('documents every GAPCAM_* variable that src/, scripts/, bench/ and test/ read', () => {
    const read = new Set<string>();
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (/\.(ts|mjs|js|sh)$/.test(e.name)) for (const m of fs.readFileSync(p, 'utf8').matchAll(/GAPCAM_[A-Z_]*[A-Z]/g)) read.add(m[0]);
      }
    };
    for (const d of ['src', 'scripts', 'bench', 'test']) walk(path.join(projectRoot, d));
    const readme = fs.readFileSync(path.join(projectRoot, 'README.md'), 'utf8');
    const table = readme.slice(readme.indexOf('### Environment variables'));
    expect([...read].filter((v) => !table.includes('`' + v + '`')).sort(), 'missing from the README table').to.deep.equal([]);
  });
});
