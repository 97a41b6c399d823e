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
    console.log(JSON.stringify({ tfjsNode: tf.version['tfjs-node'], tensorflow: tf.backend().binding.TF_Version,
      collectives: typeof tf.backend().binding.enableCollectiveOps === 'function',
      releaseLibraryPages: typeof tf.backend().binding.releaseLibraryPages === 'function',
      clearKernelCache: typeof tf.backend().binding.clearKernelCache === 'function' }));`;
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

/** Unpacks the tfjs-node source into .engine/tfjs-node; an earlier build's deps/ (TensorFlow's libraries and headers
 *  from the wheel) are kept, so a rebuild for a new ENGINE_PATCH needs no wheel. Returns whether deps/ was kept. */
function unpackTfjsNodeSource() {
  fs.mkdirSync(cacheDir, { recursive: true });
  const tgz = path.join(cacheDir, `tensorflow-tfjs-node-${TFJS_NODE_VERSION}.tgz`);
  if (!fs.existsSync(tgz)) {
    log(`fetching @tensorflow/tfjs-node@${TFJS_NODE_VERSION} source from the npm registry`);
    run('npm pack', 'npm', ['pack', `@tensorflow/tfjs-node@${TFJS_NODE_VERSION}`, '--pack-destination', cacheDir, '--silent']);
  }
  const deps = path.join(bindingDir, 'deps');
  const keptDeps = path.join(engineDir, 'deps.kept');
  fs.rmSync(keptDeps, { recursive: true, force: true });
  const keep = fs.existsSync(path.join(deps, 'lib', 'libtensorflow_cc.so.2')) && fs.existsSync(path.join(deps, 'include', 'tensorflow', 'c', 'c_api_experimental.h'));
  if (keep) fs.renameSync(deps, keptDeps);
  fs.rmSync(bindingDir, { recursive: true, force: true });
  fs.mkdirSync(bindingDir, { recursive: true });
  run('unpacking tfjs-node', 'tar', ['xzf', tgz, '-C', bindingDir, '--strip-components=1']);
  if (keep) fs.renameSync(keptDeps, deps);
  return keep;
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

// gapcam's additions to the tfjs-node 4.22 binding, applied to its source before compiling. Bump ENGINE_PATCH whenever
// they change: an existing .engine/tfjs-node with another stamp (or none) is rebuilt, so CI caches and other machines
// pick the change up on their next `npm install`.
//   1. enableCollectiveOps(serverDef: Uint8Array) → device name: TFE_EnableCollectiveOps on the backend's context
//      (TensorFlow's gRPC server + collective ops, as MultiWorkerMirroredStrategy uses), then the cached device name
//      every new tensor is placed on is re-read, since the local devices are renamed /job:worker/replica:0/task:<i>.
//   2. abortCollectiveOps(message) and checkCollectivePeer(task, timeoutMs): TFE_AbortCollectiveOps and
//      TFE_CollectiveOpsCheckPeerHealth, to name and stop on a dead peer.
//   3. list-of-strings op attributes (TF_ATTR_STRING with an array value), e.g. _FusedConv2D's fused_ops.
//   4. list-of-types op attributes (TF_ATTR_TYPE with an array value), e.g. _FusedConv2D's TArgs.
//   5. releaseLibraryPages() → bytes: MADV_PAGEOUT on the read-only mappings of TensorFlow's libraries, which hands
//      back the ~250 MB of code and data that only start-up (op and kernel registration) touched; a page used again
//      is read back from the file. Clean file pages only: the kernel cannot page out anonymous (relocated) pages
//      without swap and leaves them. Linux 5.4+; elsewhere it returns -1 and does nothing.
//   6. clearKernelCache(): TFE_ContextClearCaches, which drops the eager context's cached kernels. Inference passes
//      oneDNN convolutions their filters as constants (is_filter_const), so each kernel keeps its filter reordered
//      once into oneDNN's layout instead of on every call; this frees the kernels, and their copies, once kept
//      weights have been replaced or disposed (src/perf/native.ts, constant filters).
// 1-2 are declared in tensorflow/c/c_api_experimental.h, exported by libtensorflow_cc.so.2.
const ENGINE_PATCH = 3;
const patchStamp = path.join(bindingDir, 'gapcam-patch.json');

const PATCH_HEADER = `
  // gapcam patch: collective ops across processes (scripts/setup-engine.mjs).
  napi_value EnableCollectiveOps(napi_env env, napi_value server_def_value);
  void AbortCollectiveOps(napi_env env, napi_value message_value);
  void CheckCollectivePeer(napi_env env, napi_value task_value, napi_value timeout_ms_value);
  // Re-reads the device new tensors are placed on (GPU if one was chosen at start, else CPU).
  void RefreshDeviceName(napi_env env);
  // gapcam patch: drops the eager context's cached kernels.
  void ClearKernelCache(napi_env env);
`;

const PATCH_STRING_LIST = `    case TF_ATTR_STRING: {
      if (IsArray(env, nstatus, &js_value)) {
        // gapcam patch: a list of strings (e.g. _FusedConv2D's fused_ops).
        uint32_t length;
        nstatus = napi_get_array_length(env, js_value, &length);
        ENSURE_NAPI_OK(env, nstatus);
        std::vector<std::string> values(length);
        std::vector<const void *> pointers(length);
        std::vector<size_t> lengths(length);
        for (uint32_t i = 0; i < length; ++i) {
          napi_value element;
          nstatus = napi_get_element(env, js_value, i, &element);
          ENSURE_NAPI_OK(env, nstatus);
          nstatus = GetStringParam(env, element, values[i]);
          ENSURE_NAPI_OK(env, nstatus);
        }
        for (uint32_t i = 0; i < length; ++i) {
          pointers[i] = values[i].data();
          lengths[i] = values[i].size();
        }
        TFE_OpSetAttrStringList(tfe_op, attr_name, pointers.data(), lengths.data(), static_cast<int>(length));
        break;
      }
`;

const PATCH_TYPE_LIST = `    case TF_ATTR_TYPE: {
      if (IsArray(env, nstatus, &js_value)) {
        // gapcam patch: a list of types (e.g. _FusedConv2D's TArgs).
        uint32_t length;
        nstatus = napi_get_array_length(env, js_value, &length);
        ENSURE_NAPI_OK(env, nstatus);
        std::vector<TF_DataType> types(length);
        for (uint32_t i = 0; i < length; ++i) {
          napi_value element;
          nstatus = napi_get_element(env, js_value, i, &element);
          ENSURE_NAPI_OK(env, nstatus);
          nstatus = napi_get_value_int32(env, element, reinterpret_cast<int32_t *>(&types[i]));
          ENSURE_NAPI_OK(env, nstatus);
        }
        TFE_OpSetAttrTypeList(tfe_op, attr_name, types.data(), static_cast<int>(length));
        break;
      }
`;

const PATCH_BACKEND = `
// gapcam patch: collective ops across processes (scripts/setup-engine.mjs).
void TFJSBackend::RefreshDeviceName(napi_env env) {
  TF_AutoStatus tf_status;
  TF_DeviceList *device_list = TFE_ContextListDevices(tfe_context_, tf_status.status);
  ENSURE_TF_OK(env, tf_status);
  std::string cpu, gpu;
  const int num_devices = TF_DeviceListCount(device_list);
  for (int i = 0; i < num_devices; i++) {
    const char *type = TF_DeviceListType(device_list, i, tf_status.status);
    const char *name = TF_DeviceListName(device_list, i, tf_status.status);
    if (TF_GetCode(tf_status.status) != TF_OK) break;
    if (strcmp(type, "CPU") == 0 && cpu.empty()) cpu = name;
    if (strcmp(type, "GPU") == 0 && gpu.empty()) gpu = name;
  }
  TF_DeleteDeviceList(device_list);
  ENSURE_TF_OK(env, tf_status);
  device_name = is_gpu_device && !gpu.empty() ? gpu : cpu;
}

// gapcam patch: drops the eager context's cached kernels (and with them the filters that constant-filter
// convolutions keep in oneDNN's layout).
void TFJSBackend::ClearKernelCache(napi_env env) { TFE_ContextClearCaches(tfe_context_); }

napi_value TFJSBackend::EnableCollectiveOps(napi_env env, napi_value server_def_value) {
  napi_status nstatus;
  bool is_typed_array;
  nstatus = napi_is_typedarray(env, server_def_value, &is_typed_array);
  ENSURE_NAPI_OK_RETVAL(env, nstatus, nullptr);
  if (!is_typed_array) {
    NAPI_THROW_ERROR(env, "enableCollectiveOps() expects a Uint8Array holding a serialized tensorflow.ServerDef");
    return nullptr;
  }
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value array_buffer;
  size_t offset;
  nstatus = napi_get_typedarray_info(env, server_def_value, &type, &length, &data, &array_buffer, &offset);
  ENSURE_NAPI_OK_RETVAL(env, nstatus, nullptr);
  TF_AutoStatus tf_status;
  TFE_EnableCollectiveOps(tfe_context_, data, length, tf_status.status);
  ENSURE_TF_OK_RETVAL(env, tf_status, nullptr);
  RefreshDeviceName(env);
  napi_value result;
  nstatus = napi_create_string_utf8(env, device_name.c_str(), device_name.size(), &result);
  ENSURE_NAPI_OK_RETVAL(env, nstatus, nullptr);
  return result;
}

void TFJSBackend::AbortCollectiveOps(napi_env env, napi_value message_value) {
  std::string message;
  napi_status nstatus = GetStringParam(env, message_value, message);
  ENSURE_NAPI_OK(env, nstatus);
  TF_Status *abort_status = TF_NewStatus();
  TF_SetStatus(abort_status, TF_ABORTED, message.c_str());
  TFE_AbortCollectiveOps(tfe_context_, abort_status);
  TF_DeleteStatus(abort_status);
}

void TFJSBackend::CheckCollectivePeer(napi_env env, napi_value task_value, napi_value timeout_ms_value) {
  std::string task;
  napi_status nstatus = GetStringParam(env, task_value, task);
  ENSURE_NAPI_OK(env, nstatus);
  int64_t timeout_ms;
  nstatus = napi_get_value_int64(env, timeout_ms_value, &timeout_ms);
  ENSURE_NAPI_OK(env, nstatus);
  TF_AutoStatus tf_status;
  TFE_CollectiveOpsCheckPeerHealth(tfe_context_, task.c_str(), timeout_ms, tf_status.status);
  ENSURE_TF_OK(env, tf_status);
}

}  // namespace tfnodejs
`;

const PATCH_BINDING_FUNCTIONS = `// gapcam patch: start-up pages of TensorFlow's libraries back to the system (scripts/setup-engine.mjs).
static napi_value ReleaseLibraryPages(napi_env env, napi_callback_info info) {
  double advised = -1;
#if defined(__linux__)
  advised = 0;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long start = 0, end = 0;
    char perms[5] = {0};
    if (sscanf(line.c_str(), "%lx-%lx %4s", &start, &end, perms) != 3) continue;
    if (perms[1] == 'w' || line.find("libtensorflow") == std::string::npos) continue;
    if (madvise(reinterpret_cast<void *>(start), end - start, 21 /* MADV_PAGEOUT */) == 0) advised += end - start;
  }
#endif
  napi_value result;
  napi_status nstatus = napi_create_double(env, advised, &result);
  ENSURE_NAPI_OK_RETVAL(env, nstatus, nullptr);
  return result;
}

// gapcam patch: collective ops across processes (scripts/setup-engine.mjs).
static napi_value GapcamArgs(napi_env env, napi_callback_info info, size_t want, napi_value *args, const char *name) {
  size_t argc = want;
  napi_status nstatus = napi_get_cb_info(env, info, &argc, args, nullptr, nullptr);
  ENSURE_NAPI_OK_RETVAL(env, nstatus, nullptr);
  if (argc < want) {
    NAPI_THROW_ERROR(env, "Invalid number of args passed to %s(): expecting %d", name, static_cast<int>(want));
    return nullptr;
  }
  return args[0];
}

static napi_value ClearKernelCache(napi_env env, napi_callback_info info) {
  TFJSBackend *const backend = GetTFJSBackend(env);
  if (!backend) return nullptr;
  backend->ClearKernelCache(env);
  return nullptr;
}

static napi_value EnableCollectiveOps(napi_env env, napi_callback_info info) {
  napi_value args[1];
  if (!GapcamArgs(env, info, 1, args, "enableCollectiveOps")) return nullptr;
  TFJSBackend *const backend = GetTFJSBackend(env);
  if (!backend) return nullptr;
  return backend->EnableCollectiveOps(env, args[0]);
}

static napi_value AbortCollectiveOps(napi_env env, napi_callback_info info) {
  napi_value args[1];
  if (!GapcamArgs(env, info, 1, args, "abortCollectiveOps")) return nullptr;
  TFJSBackend *const backend = GetTFJSBackend(env);
  if (!backend) return nullptr;
  backend->AbortCollectiveOps(env, args[0]);
  return nullptr;
}

static napi_value CheckCollectivePeer(napi_env env, napi_callback_info info) {
  napi_value args[2];
  if (!GapcamArgs(env, info, 2, args, "checkCollectivePeer")) return nullptr;
  TFJSBackend *const backend = GetTFJSBackend(env);
  if (!backend) return nullptr;
  backend->CheckCollectivePeer(env, args[0], args[1]);
  return nullptr;
}

`;

const PATCH_EXPORTS = `      {"enableCollectiveOps", nullptr, EnableCollectiveOps, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"abortCollectiveOps", nullptr, AbortCollectiveOps, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"checkCollectivePeer", nullptr, CheckCollectivePeer, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"releaseLibraryPages", nullptr, ReleaseLibraryPages, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"clearKernelCache", nullptr, ClearKernelCache, nullptr, nullptr, nullptr, napi_default, nullptr},
`;

/** Replaces `anchor` (which must occur exactly once) in `file` under the binding's source. */
function edit(file, anchor, replacement) {
  const p = path.join(bindingDir, 'binding', file);
  const text = fs.readFileSync(p, 'utf8');
  const at = text.indexOf(anchor);
  if (at < 0 || text.indexOf(anchor, at + 1) >= 0) {
    throw new Error(`patching ${file}: the tfjs-node ${TFJS_NODE_VERSION} source is not the one the patch was written for`);
  }
  fs.writeFileSync(p, text.slice(0, at) + replacement + text.slice(at + anchor.length));
}

function patchBindingSource() {
  edit('tfjs_backend.h', '  napi_value GetNumOfTensors(napi_env env);\n', `  napi_value GetNumOfTensors(napi_env env);\n${PATCH_HEADER}`);
  edit('tfjs_backend.cc', '#include "tensorflow/c/eager/c_api.h"\n',
    '#include "tensorflow/c/eager/c_api.h"\n#include "tensorflow/c/c_api_experimental.h"\n#include <vector>\n');
  edit('tfjs_backend.cc', '    case TF_ATTR_STRING: {\n', PATCH_STRING_LIST);
  edit('tfjs_backend.cc', '    case TF_ATTR_TYPE: {\n', PATCH_TYPE_LIST);
  edit('tfjs_backend.cc', '}  // namespace tfnodejs\n', PATCH_BACKEND);
  edit('tfjs_binding.cc', '#include "tfjs_backend.h"\n', '#include "tfjs_backend.h"\n#include <sys/mman.h>\n#include <cstdio>\n#include <fstream>\n#include <string>\n');
  edit('tfjs_binding.cc', 'static void FinalizeTFNodeJSBinding', `${PATCH_BINDING_FUNCTIONS}static void FinalizeTFNodeJSBinding`);
  edit('tfjs_binding.cc', '\n  };\n  nstatus = napi_define_properties(env, exports, ARRAY_SIZE(exports_properties),',
    `\n${PATCH_EXPORTS}  };\n  nstatus = napi_define_properties(env, exports, ARRAY_SIZE(exports_properties),`);
}

function patchStampOf() {
  try {
    return JSON.parse(fs.readFileSync(patchStamp, 'utf8')).patch;
  } catch {
    return undefined;
  }
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
    const stamp = patchStampOf();
    if (local.versions?.tfjsNode === TFJS_NODE_VERSION && stamp === ENGINE_PATCH) {
      return log(`native engine in .engine/tfjs-node works (${describe(local.versions)}, gapcam patch ${ENGINE_PATCH})`);
    }
    log(`rebuilding .engine/tfjs-node: ${!local.versions ? local.error : local.versions.tfjsNode !== TFJS_NODE_VERSION
      ? `it is tfjs-node ${local.versions.tfjsNode}, not ${TFJS_NODE_VERSION}` : `it has gapcam patch ${stamp ?? 'none'}, not ${ENGINE_PATCH}`}`);
  }
  // 3. Build it from source against the TensorFlow C API in the tensorflow-cpu wheel.
  log(`${why}; building it from source`);
  const started = Date.now();
  fs.mkdirSync(engineDir, { recursive: true });
  fs.writeFileSync(buildLog, `gapcam native engine build, ${new Date().toISOString()}\n`);
  const haveDeps = unpackTfjsNodeSource();
  const wheel = haveDeps ? undefined : downloadWheel();
  if (wheel) unpackTensorFlowCApi(wheel);
  patchBindingSource();
  buildBinding();
  if (wheel) fs.rmSync(wheel, { force: true }); // 270 MB; the headers and libraries needed are unpacked
  const built = probeEngine(bindingDir);
  if (!built.versions) throw new Error(`the built binding does not work: ${built.error}`);
  if (!built.versions.collectives || !built.versions.releaseLibraryPages || !built.versions.clearKernelCache) throw new Error('the built binding lacks the gapcam patch');
  fs.writeFileSync(patchStamp, `${JSON.stringify({ patch: ENGINE_PATCH })}\n`);
  log(`built in ${((Date.now() - started) / 1000).toFixed(0)} s: ${describe(built.versions)}, gapcam patch ${ENGINE_PATCH}`);
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
