// File-system errors on user paths (issue 12): one line naming the path and the cause, exit 2, no temporary file
// left, previous results intact. Real kernel errors wherever this machine can produce them as root: ENOSPC from
// /dev/full, EACCES and EPERM from sysfs (which refuses new files even to root, where chmod would not), ENOTDIR,
// ENAMETOOLONG and EISDIR from ordinary paths. There is no read-only mount a test can make here, so EROFS is
// injected at the same seam (fs.promises.writeFile) as the end-to-end ENOSPC, whose error is the kernel's own.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { useEngine, makeTempDir } from '../helpers.js';
import { runMain, gapcamStderr } from '../engine/run-cli.js';
import { writeTinyModel, writeVocFolder } from '../cam/fixtures.js';
import { userErrorFromFs, FS_ERROR_CAUSES } from '../../src/util/fs-errors.js';
import { withPath, writeFileAtomic } from '../../src/util/atomic.js';
import { UserError } from '../../src/errors.js';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

/** Every file under `dir` with its bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const p = path.join(dir, f);
    if (fs.statSync(p).isFile()) out[f] = fs.readFileSync(p).toString('base64');
  }
  return out;
}

function expectOneLine(r: { code: number; stderr: string }, pattern: RegExp): void {
  expect(r.code, r.stderr).to.equal(2);
  const lines = gapcamStderr(r.stderr).filter((l) => l.startsWith('gapcam: ') && !l.startsWith('gapcam: engine'));
  expect(lines, r.stderr).to.have.length(1);
  expect(lines[0]).to.match(pattern);
  expect(r.stderr).to.not.match(/internal error|\n\s+at /);
}

/** Runs `body` with fs.promises.writeFile failing for files under `dir`: ENOSPC writes to /dev/full (the kernel's own
 *  error, given the path it stood for), other codes are thrown as Node would. */
async function withWriteFault<T>(dir: string, code: 'ENOSPC' | 'EROFS', body: () => Promise<T>): Promise<T> {
  const original = fs.promises.writeFile;
  fs.promises.writeFile = (async (file: Parameters<typeof original>[0], data: Parameters<typeof original>[1], ...rest: unknown[]) => {
    if (typeof file === 'string' && path.resolve(file).startsWith(path.resolve(dir) + path.sep)) {
      if (code === 'ENOSPC') {
        try {
          await original('/dev/full', data);
        } catch (err) {
          throw withPath(err, file);
        }
        throw new Error('/dev/full accepted a write');
      }
      throw Object.assign(new Error(`EROFS: read-only file system, open '${file}'`), { code, errno: -30, syscall: 'open', path: file });
    }
    return (original as (...a: unknown[]) => Promise<void>)(file, data, ...rest);
  }) as typeof original;
  try {
    return await body();
  } finally {
    fs.promises.writeFile = original;
  }
}

describe('util/fs-errors: file-system errors as one-line user errors', function () {
  this.timeout(120_000);
  let tmp: string;
  before(() => { tmp = makeTempDir('gapcam-fserr-'); });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('maps the kernel errors of each code to "<action> <path>: <cause> (<code>)"', async () => {
    const file = path.join(tmp, 'plain.txt');
    fs.writeFileSync(file, 'x');
    const cases: [unknown, RegExp][] = [
      [withPath(caught(() => fs.writeFileSync('/dev/full', 'x')), '/dev/full'), /^cannot write \/dev\/full: no space left on the device \(ENOSPC\)$/],
      [caught(() => fs.writeFileSync('/sys/gapcam-test-file', 'x')), /^cannot open \/sys\/gapcam-test-file: permission denied \(EACCES\)$/],
      [caught(() => fs.mkdirSync('/sys/gapcam-test-dir')), /^cannot create the folder \/sys\/gapcam-test-dir: operation not permitted \(EPERM\)$/],
      [caught(() => fs.mkdirSync(path.join(file, 'sub'))), /^cannot create the folder .*plain\.txt\/sub: a part of the path is a file, not a folder \(ENOTDIR\)$/],
      [caught(() => fs.writeFileSync(path.join(tmp, 'n'.repeat(300)), 'x')), /^cannot open .*nnnn: a name in the path is too long \(ENAMETOOLONG\)$/],
      [withPath(caught(() => fs.readFileSync(tmp)), tmp), /^cannot read .*gapcam-fserr-.*: it is a folder, a file was expected \(EISDIR\)$/],
    ];
    for (const [err, pattern] of cases) {
      const mapped = userErrorFromFs(err);
      expect(mapped, String(err)).to.be.instanceOf(UserError);
      expect(mapped!.message).to.match(pattern);
    }
    expect(Object.keys(FS_ERROR_CAUSES)).to.include.members(['ENOSPC', 'EACCES', 'EROFS', 'ENAMETOOLONG', 'ENOTDIR', 'EISDIR']);
    expect(userErrorFromFs(new Error('plain'))).to.equal(undefined);
    expect(userErrorFromFs(Object.assign(new Error('x'), { code: 'ENOENT' }))).to.equal(undefined);
  });

  it('writeFileAtomic names the real file, not its temporary, and leaves no temporary behind', async () => {
    const dir = path.join(tmp, 'atomic');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'a.json'), 'old');
    const err = await withWriteFault(dir, 'ENOSPC', () => writeFileAtomic(path.join(dir, 'a.json'), 'new').then(() => undefined, (e: unknown) => e));
    expect(userErrorFromFs(err)!.message).to.equal(`cannot write ${path.join(dir, 'a.json')}: no space left on the device (ENOSPC)`);
    expect(fs.readdirSync(dir)).to.deep.equal(['a.json']);
    expect(fs.readFileSync(path.join(dir, 'a.json'), 'utf8')).to.equal('old');
  });

  describe('through the command line', () => {
    let model: string;
    let voc: string;
    let features: string;
    before(async () => {
      await useEngine();
      model = await writeTinyModel(tmp);
      voc = await writeVocFolder(tmp, 8);
      features = path.join(tmp, 'features');
      expect((await runMain(['features', model, '--dataset', voc, '--out', features])).code).to.equal(0);
    });

    it('evaluate on a full disk: one line, exit 2, no temporary file, the previous evaluation intact', async () => {
      // Before: a 16-line unhandled stream error and a `.per-image.csv.tmp-*` left beside the folder.
      const out = path.join(tmp, 'eval');
      expect((await runMain(['evaluate', model, '--dataset', voc, '--out', out])).code).to.equal(0);
      const before = snapshot(out);
      const r = await withWriteFault(out, 'ENOSPC', () => runMain(['evaluate', model, '--dataset', voc, '--out', out, '--limit', '3']));
      expectOneLine(r, new RegExp(`^gapcam: cannot write ${out.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}/[a-z-]+\\.(csv|json|md): no space left on the device \\(ENOSPC\\)$`));
      expect(snapshot(out)).to.deep.equal(before);
      expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).to.deep.equal([]);
    });

    it('svm on a read-only file system (EROFS) and into sysfs (EACCES, real): one line each, nothing left', async () => {
      const out = path.join(tmp, 'svm');
      const args = ['svm', '--train', features, '--train-split', 'train', '--test-split', 'test', '--c-grid', '1'];
      expect((await runMain([...args, '--out', out])).code).to.equal(0);
      const before = snapshot(out);
      expectOneLine(await withWriteFault(out, 'EROFS', () => runMain([...args, '--out', out])), /^gapcam: cannot open .*\/svm\/model\.json: the file system is read-only \(EROFS\)$/);
      expect(snapshot(out)).to.deep.equal(before);
      expectOneLine(await runMain([...args, '--out', '/sys']), /^gapcam: cannot open \/sys\/model\.json: permission denied \(EACCES\)$/);
      expect(fs.existsSync('/sys/model.json')).to.equal(false);
    });

    it('ENOTDIR, ENAMETOOLONG and EISDIR on user paths are one line naming the path', async () => {
      const file = path.join(tmp, 'a-file');
      fs.writeFileSync(file, 'x');
      expectOneLine(await runMain(['evaluate', model, '--dataset', voc, '--out', path.join(file, 'sub')]), /^gapcam: cannot read .*a-file\/sub: a part of the path is a file, not a folder \(ENOTDIR\)$/);
      expectOneLine(await runMain(['features', model, '--dataset', voc, '--out', path.join(tmp, 'x'.repeat(300))]), /xxxx: a name in the path is too long \(ENAMETOOLONG\)$/);
      const bad = path.join(tmp, 'bad-features');
      fs.mkdirSync(path.join(bad, 'features.npy'), { recursive: true });
      expectOneLine(await runMain(['svm', '--train', bad, '--c-grid', '1']), /^gapcam: cannot read .*bad-features\/features\.npy: it is a folder, a file was expected \(EISDIR\)$/);
    });
  });
});
