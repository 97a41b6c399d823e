#!/usr/bin/env node
// Builds the native TensorFlow engine when npm could not install it.
//
// @tensorflow/tfjs-node's own install script downloads libtensorflow and a prebuilt binding from a host that
// many machines cannot reach; npm then drops the optional dependency silently. In that case this script builds
// the same tfjs-node 4.22 binding from source against the TensorFlow C API shipped inside the `tensorflow-cpu`
// wheel that pip can obtain (from whatever index pip is configured with), and places it in `.engine/tfjs-node`
// (outside node_modules, so `npm ci` keeps it). src/engine.ts loads it from there.
//
// Where npm's own install of @tensorflow/tfjs-node worked (a machine that can download libtensorflow), this script
// checks that it runs and does nothing else. Tool output (npm pack, pip, node-gyp and the compiler) goes to
// .engine/build.log and is shown only when a step fails.
//
// Never fails the install: if nothing works it says why, and gapcam falls back to the wasm engine.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const require = createRequire(path.join(root, 'package.json'));
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const TFJS_NODE_VERSION = pkg.optionalDependencies['@tensorflow/tfjs-node'];
const TF_WHEEL = process.env.GAPCAM_TF_WHEEL_SPEC || 'tensorflow-cpu==2.21.0';
const engineDir = path.join(root, '.engine');
const bindingDir = path.join(engineDir, 'tfjs-node');
const cacheDir = path.join(engineDir, 'cache');
const log = (msg) => console.log(`[gapcam engine] ${msg}`);

const buildLog = path.join(engineDir, 'build.log');

/** Loads `spec` (a module path or name) in a child process (a broken native library can crash the process that
 *  loads it) and runs a matMul on the tensorflow backend. Returns { versions } or { error }. */
function probeEngine(spec) {
  const probe = `
    const tf = require(${JSON.stringify(spec)});
    const a = tf.tensor2d([[1, 2], [3, 4]]);
    const v = tf.matMul(a, a).dataSync();
    if (tf.getBackend() !== 'tensorflow') throw new Error('backend is ' + tf.getBackend() + ', not tensorflow');
    if (v[0] !== 7 || v[3] !== 22) throw new Error('matMul gave ' + Array.from(v));
    console.log(JSON.stringify({ tfjsNode: tf.version['tfjs-node'], tensorflow: tf.backend().binding.TF_Version }));`;
  const r = spawnSync(process.execPath, ['-e', probe], { cwd: root, encoding: 'utf8',
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '2' } });
  if (r.status === 0) {
    try {
      return { versions: JSON.parse(r.stdout.trim().split('\n').pop()) };
    } catch {
      return { error: `unexpected probe output: ${r.stdout.trim()}` };
    }
  }
  const lines = `${r.stderr || ''}`.split('\n').map((l) => l.trim());
  const error = lines.find((l) => /^(Error|\w*Error):/.test(l)) ?? lines.find(Boolean) ?? `exit code ${r.status}`;
  return { error };
}

const describe = (v) => `tfjs-node ${v.tfjsNode}, TensorFlow ${v.tensorflow}`;

/** Runs a tool with its output appended to .engine/build.log; on failure shows the relevant part and throws. */
function run(step, cmd, args, opts = {}) {
  fs.mkdirSync(engineDir, { recursive: true });
  fs.appendFileSync(buildLog, `\n$ ${[cmd, ...args].join(' ')}\n`);
  const fd = fs.openSync(buildLog, 'a');
  let r;
  try {
    r = spawnSync(cmd, args, { stdio: ['ignore', fd, fd], ...opts });
  } finally {
    fs.closeSync(fd);
  }
  if (r.error) throw new Error(`${step}: cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const lines = fs.readFileSync(buildLog, 'utf8').split('\n');
    const tail = lines.slice(lines.lastIndexOf(`$ ${[cmd, ...args].join(' ')}`) + 1).filter((l) => l.trim());
    const errors = tail.filter((l) => /\berror\b|ERR!|fatal|No such file|not found/i.test(l)).slice(0, 25);
    const shown = errors.length > 0 ? errors : tail.slice(-25);
    for (const l of shown) console.error(`[gapcam engine]   ${l}`);
    throw new Error(`${step} failed (exit ${r.status ?? r.signal}); full output in ${path.relative(root, buildLog)}`);
  }
}

/** pip's configured indexes and find-links, read from pip itself, so that local indexes are used directly and pip
 *  makes no slow retries against an index it cannot reach. */
function pipSources() {
  const r = spawnSync('python3', ['-m', 'pip', 'config', 'list'], { encoding: 'utf8' });
  const sources = { index: [], links: [] };
  for (const line of (r.stdout || '').split('\n')) {
    const m = line.match(/^[^.]+\.(index-url|extra-index-url|find-links)='(.*)'$/);
    if (!m) continue;
    const values = m[2].split(/\s+/).filter(Boolean);
    (m[1] === 'find-links' ? sources.links : sources.index).push(...values);
  }
  return { index: [...new Set(sources.index)], links: [...new Set(sources.links)] };
}

function downloadWheel() {
  fs.mkdirSync(cacheDir, { recursive: true });
  const have = fs.readdirSync(cacheDir).find((f) => /^tensorflow_cpu-.*\.whl$/.test(f));
  if (have) return path.join(cacheDir, have);
  const { index, links } = pipSources();
  const args = ['-m', 'pip', 'download', '--no-deps', '--only-binary=:all:', '--disable-pip-version-check',
    '--progress-bar', 'off', '--retries', '0', '--timeout', '15', '-d', cacheDir, TF_WHEEL];
  if (index.length > 0) args.push('--index-url', index[0], ...index.slice(1).flatMap((u) => ['--extra-index-url', u]));
  for (const l of links) args.push('--find-links', l);
  log(`fetching the ${TF_WHEEL} wheel (about 270 MB) with pip (${index.length + links.length} configured sources)`);
  run('pip download', 'python3', args);
  const got = fs.readdirSync(cacheDir).find((f) => /^tensorflow_cpu-.*\.whl$/.test(f));
  if (!got) throw new Error(`pip did not produce a ${TF_WHEEL} wheel`);
  return path.join(cacheDir, got);
}

function unpackTfjsNodeSource() {
  fs.mkdirSync(cacheDir, { recursive: true });
  const tgz = path.join(cacheDir, `tensorflow-tfjs-node-${TFJS_NODE_VERSION}.tgz`);
  if (!fs.existsSync(tgz)) {
    log(`fetching @tensorflow/tfjs-node@${TFJS_NODE_VERSION} source from the npm registry`);
    run('npm pack', 'npm', ['pack', `@tensorflow/tfjs-node@${TFJS_NODE_VERSION}`, '--pack-destination', cacheDir, '--silent']);
  }
  fs.rmSync(bindingDir, { recursive: true, force: true });
  fs.mkdirSync(bindingDir, { recursive: true });
  run('unpacking tfjs-node', 'tar', ['xzf', tgz, '-C', bindingDir, '--strip-components=1']);
}

/** Takes from the wheel only the two shared libraries and the C API headers the binding includes. */
function unpackTensorFlowCApi(wheel) {
  const deps = path.join(bindingDir, 'deps');
  const extract = `
import sys, zipfile, os, re
wheel, deps = sys.argv[1], sys.argv[2]
keep = re.compile(r'^tensorflow/include/(tensorflow/c/.*|tensorflow/core/platform/ctstring.*\\.h|tsl/platform/ctstring.*\\.h|xla/tsl/c/.*\\.h)$')
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.endswith('/'): continue
        if name in ('tensorflow/libtensorflow_cc.so.2', 'tensorflow/libtensorflow_framework.so.2'):
            dest = os.path.join(deps, 'lib', os.path.basename(name))
        elif keep.match(name):
            dest = os.path.join(deps, 'include', name[len('tensorflow/include/'):])
        else:
            continue
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        with z.open(name) as src, open(dest, 'wb') as out:
            while True:
                chunk = src.read(1 << 20)
                if not chunk: break
                out.write(chunk)
`;
  run('unpacking the TensorFlow C API', 'python3', ['-c', extract, wheel, deps]);
  // binding.gyp links -ltensorflow -ltensorflow_framework; the wheel's libtensorflow_cc exports every TF_*/TFE_*
  // symbol the binding calls, so it stands in for libtensorflow.so.
  const lib = path.join(deps, 'lib');
  fs.symlinkSync('libtensorflow_cc.so.2', path.join(lib, 'libtensorflow.so'));
  fs.symlinkSync('libtensorflow_framework.so.2', path.join(lib, 'libtensorflow_framework.so'));
}

function nodeHeadersDir() {
  const candidates = [process.env.npm_config_nodedir, path.resolve(path.dirname(process.execPath), '..')];
  return candidates.find((d) => d && fs.existsSync(path.join(d, 'include', 'node', 'node_api.h')));
}

function buildBinding() {
  const nodedir = nodeHeadersDir();
  if (!nodedir) throw new Error('no local Node.js headers (include/node/node_api.h) next to the node binary');
  const preGyp = require('@mapbox/node-pre-gyp');
  const target = preGyp.find(path.join(bindingDir, 'package.json')); // e.g. lib/napi-v8/tfjs_binding.node
  const napi = path.basename(path.dirname(target)).replace('napi-v', '');
  const nodeGyp = require.resolve('node-gyp/bin/node-gyp.js');
  log(`compiling the tfjs-node binding against TensorFlow's C API (node headers: ${nodedir})`);
  run('node-gyp build', process.execPath, [nodeGyp, 'rebuild', '--loglevel=warn', `--nodedir=${nodedir}`, '-j', '2',
    '--module_name=tfjs_binding', `--module_path=${path.dirname(target)}`, `--napi_build_version=${napi}`],
  { cwd: bindingDir, env: { ...process.env, npm_config_nodedir: nodedir } });
  if (!fs.existsSync(target)) throw new Error(`the build did not produce ${target}`);
}

function main() {
  if (process.env.GAPCAM_SKIP_ENGINE_BUILD) return log('GAPCAM_SKIP_ENGINE_BUILD set: not building');
  // 1. npm's own install worked (the machine could download libtensorflow): use it as is.
  let why = '@tensorflow/tfjs-node is not installed (npm drops it when its install cannot download libtensorflow)';
  if (isResolvable('@tensorflow/tfjs-node')) {
    const stock = probeEngine('@tensorflow/tfjs-node');
    if (stock.versions) return log(`@tensorflow/tfjs-node installed by npm works (${describe(stock.versions)}); nothing to build`);
    why = `@tensorflow/tfjs-node from npm does not work (${stock.error})`;
  }
  // 2. An earlier from-source build of the same tfjs-node version (kept across npm ci, outside node_modules).
  if (fs.existsSync(path.join(bindingDir, 'package.json'))) {
    const local = probeEngine(bindingDir);
    if (local.versions?.tfjsNode === TFJS_NODE_VERSION) {
      return log(`native engine in .engine/tfjs-node works (${describe(local.versions)})`);
    }
    log(`rebuilding .engine/tfjs-node: ${local.versions ? `it is tfjs-node ${local.versions.tfjsNode}, not ${TFJS_NODE_VERSION}` : local.error}`);
  }
  // 3. Build it from source against the TensorFlow C API in the tensorflow-cpu wheel.
  log(`${why}; building it from source`);
  const started = Date.now();
  fs.mkdirSync(engineDir, { recursive: true });
  fs.writeFileSync(buildLog, `gapcam native engine build, ${new Date().toISOString()}\n`);
  unpackTfjsNodeSource();
  const wheel = downloadWheel();
  unpackTensorFlowCApi(wheel);
  buildBinding();
  fs.rmSync(wheel, { force: true }); // 270 MB; the headers and libraries needed are unpacked
  const built = probeEngine(bindingDir);
  if (!built.versions) throw new Error(`the built binding does not work: ${built.error}`);
  log(`built in ${((Date.now() - started) / 1000).toFixed(0)} s: ${describe(built.versions)}`);
}

function isResolvable(spec) {
  try {
    require.resolve(spec);
    return true;
  } catch {
    return false;
  }
}

try {
  main();
} catch (err) {
  log(`could not set up the native TensorFlow engine: ${err.message.split('\n')[0]}`);
  log('gapcam will fall back to the wasm engine (slower, single thread). Run `node scripts/setup-engine.mjs` to retry.');
}
