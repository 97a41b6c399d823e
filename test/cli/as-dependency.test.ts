// gapcam as another project's dependency: what `npm pack` ships, and that the CLI run from another folder writes
// its default folders (checkpoints/, .cache/, datasets/) there — or under GAPCAM_HOME — and nothing into the
// package's own folder. (Installing the packed tarball into a scratch project would compile the engine and take
// minutes; running the CLI of this checkout with the scratch folder as working directory tests the same paths. The
// train/cam runs call the CLI's main() in this process after a chdir: a child process per command costs a minute
// of module loading on a loaded 2-core machine.)
import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { projectRoot, workRoot, defaultCheckpointRoot, defaultCacheRoot, defaultDataRoot } from '../../src/paths.js';
import { runMain } from '../engine/run-cli.js';
import { makeTempDir, useEngine } from '../helpers.js';
import { writeMiniCub } from '../train/mini-cub.js';

const TSX = path.join(projectRoot, 'node_modules', 'tsx', 'dist', 'loader.mjs');
const CLI = path.join(projectRoot, 'src', 'cli.ts');

function gapcam(args: string[], cwd: string, env: Record<string, string> = {}): { code: number | null; stdout: string; stderr: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env };
  for (const k of ['GAPCAM_HOME', 'GAPCAM_DATA_ROOT', 'GAPCAM_CACHE_DIR', 'GAPCAM_PRETRAINED_DIR', 'GAPCAM_BACKEND']) if (!(k in env)) delete childEnv[k];
  const r = spawnSync(process.execPath, ['--import', TSX, CLI, ...args], { cwd, env: childEnv, encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Every file of the package folder (not node_modules, .engine, .git) with its size and mtime. */
function snapshot(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (dir === root && ['node_modules', '.engine', '.git'].includes(e.name)) continue;
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        const st = fs.statSync(p);
        out.set(path.relative(root, p), `${st.size}:${st.mtimeMs}`);
      }
    }
  };
  walk(root);
  return out;
}

function changed(before: Map<string, string>, after: Map<string, string>): string[] {
  return [...after].filter(([f, v]) => before.get(f) !== v).map(([f]) => f);
}

describe('gapcam as a dependency', function () {
  this.timeout(300_000);

  it('npm pack ships dist/src, recipes, scripts and the README only', function () {
    const r = spawnSync('npm', ['pack', '--dry-run', '--ignore-scripts', '--json'], { cwd: projectRoot, encoding: 'utf8', timeout: 120_000 });
    if (r.error || r.status !== 0) this.skip();
    const files = (JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0].files.map((f) => f.path);
    const outside = files.filter((f) => !/^(dist\/src\/|recipes\/|scripts\/)/.test(f) && !['README.md', 'package.json'].includes(f));
    expect(outside, 'files outside dist/src, recipes, scripts').to.deep.equal([]);
    expect(files).to.include.members(['README.md', 'package.json', 'recipes/vgg-gap-tiny.json', 'scripts/setup-engine.mjs']);
    if (fs.existsSync(path.join(projectRoot, 'dist', 'src', 'cli.js'))) expect(files).to.include.members(['dist/src/cli.js', 'dist/src/index.js', 'dist/src/index.d.ts']);
    expect(files.some((f) => /^(test|bench|src)\//.test(f) || f.startsWith('dist/bench/'))).to.equal(false);
  });

  it('gapcam --version prints the package version', () => {
    const r = gapcam(['--version'], makeTempDir());
    const pkg = JSON.parse(fs.readFileSync(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
    expect(r.code).to.equal(0);
    expect(r.stdout.trim()).to.equal(pkg.version);
  });

  it('default folders hang from GAPCAM_HOME, else the working directory', () => {
    const saved = { home: process.env.GAPCAM_HOME, cache: process.env.GAPCAM_CACHE_DIR };
    try {
      delete process.env.GAPCAM_CACHE_DIR;
      delete process.env.GAPCAM_HOME;
      expect(workRoot()).to.equal(process.cwd());
      process.env.GAPCAM_HOME = '/srv/gapcam';
      expect([workRoot(), defaultDataRoot(), defaultCheckpointRoot(), defaultCacheRoot()]).to.deep.equal(
        ['/srv/gapcam', '/srv/gapcam/datasets', '/srv/gapcam/checkpoints', '/srv/gapcam/.cache']);
      process.env.GAPCAM_CACHE_DIR = '/var/cache/g';
      expect(defaultCacheRoot()).to.equal('/var/cache/g');
    } finally {
      for (const [k, v] of [['GAPCAM_HOME', saved.home], ['GAPCAM_CACHE_DIR', saved.cache]] as const) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    }
  });

  it('train and cam from a scratch folder write under it, never into the package folder', async () => {
    await useEngine();
    const scratch = makeTempDir('gapcam-scratch-');
    const cub = await writeMiniCub(path.join(scratch, 'data', 'cub'), { classes: 2, perClass: 4, size: 16 });
    fs.writeFileSync(path.join(scratch, 'r.json'), JSON.stringify({
      model: { backbone: 'vgg-tiny', weights: 'none', init: 'he-normal', head: { convFilters: 8 } },
      data: { dataset: cub, inputSize: 16, preprocessing: 'torch' },
      optimizer: { type: 'sgd', momentum: 0.9 }, lr: 0.02, batchSize: 4, epochs: 1, seed: 5, evaluation: { split: 'none' },
    }));
    const image = path.join(cub, 'images', '001.class_0', fs.readdirSync(path.join(cub, 'images', '001.class_0'))[0]);
    const before = snapshot(projectRoot);
    const cwd = process.cwd();
    process.chdir(scratch);
    try {
      const t = await runMain(['train', 'r.json', '--run-name', 'run1']);
      expect(t.code, t.stderr).to.equal(0);
      // A run name resolves under the scratch folder's checkpoints/.
      const c = await runMain(['cam', 'run1', image, '--out', 'cams']);
      expect(c.code, c.stderr).to.equal(0);
    } finally {
      process.chdir(cwd);
    }
    expect(fs.existsSync(path.join(scratch, 'checkpoints', 'run1', 'best', 'model.json'))).to.equal(true);
    expect(fs.readdirSync(path.join(scratch, 'checkpoints', 'run1')).some((f) => f.startsWith('events.out.tfevents.'))).to.equal(true);
    expect(fs.existsSync(path.join(scratch, '.cache')), '.cache in the scratch folder').to.equal(true);
    expect(fs.existsSync(path.join(scratch, 'cams', 'cam.json'))).to.equal(true);
    expect(changed(before, snapshot(projectRoot)), 'files written in the package folder').to.deep.equal([]);
  });
});
