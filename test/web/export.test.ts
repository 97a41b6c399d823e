// `gapcam model export --web` end to end: darknet-tiny (CAM-ready: class-score conv2d_16 → GAP) exported as a page,
// served on 127.0.0.1 and opened in headless Chromium (Debian's `chromium`, driven by playwright-core); a kangaroo
// photo is loaded through the page's file picker and the page's numbers (window.__gapcam) are checked against
// `gapcam cam` (runCam) on the same photo: the same model input bytes, top-1 class, maps within 1e-3, the same CAM
// box, and the same overlay picture; again from file:// and on the WASM backend. Skipped with a message when Chromium or ../shared is missing.
// GAPCAM_UPDATE_SCREENSHOT=1 also writes the README's screenshot, docs/web-export.png.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import sharp from 'sharp';
import { useEngine, makeTempDir, darknetTinyDir, sharedDatasetsDir } from '../helpers.js';
import { exportWeb } from '../../src/web/export.js';
import { runCam } from '../../src/cam/service.js';
import { decodeImage } from '../../src/data/image.js';
import { resizeRgb } from '../../src/cam/input.js';
import { readNpy } from '../../src/util/npy.js';
import { projectRoot } from '../../src/paths.js';

const CHROMIUM = process.env.GAPCAM_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const PHOTO = path.join(sharedDatasetsDir, 'kangaroo', 'images', '00007.jpg');
const PHOTO2 = path.join(sharedDatasetsDir, 'kangaroo', 'images', '00044.jpg');

const TYPES: Record<string, string> = { '.html': 'text/html', '.js': 'text/javascript', '.json': 'application/json', '.wasm': 'application/wasm', '.bin': 'application/octet-stream' };

/** A static file server for `root` on 127.0.0.1, on a free port. */
async function serve(root: string): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer((req, res) => {
    const rel = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname).replace(/^\/+/, '') || 'index.html';
    const file = path.resolve(root, rel);
    if (!file.startsWith(path.resolve(root) + path.sep) || !fs.existsSync(file) || !fs.statSync(file).isFile()) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] ?? 'application/octet-stream' });
    fs.createReadStream(file).pipe(res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/`, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

interface PageMap { classId: number; h: number; w: number; raw: number[]; atInput: number[]; box: number[] | null }
interface PageState { status: string; error?: string; backend?: string; image?: { name: string }; top?: { classId: number; className: string; probability: number }[]; selected?: number; map?: PageMap }

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).to.equal(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('web export in headless Chromium (darknet-tiny, a kangaroo photo)', function () {
  this.timeout(900_000);
  let dir: string;
  let out: string;
  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      console.log(`    (skipped: ${CHROMIUM} not found; run scripts/install-test-deps.sh as root to install Debian's chromium)`);
      this.skip();
    }
    if (!fs.existsSync(path.join(darknetTinyDir, 'model.json')) || !fs.existsSync(PHOTO)) {
      console.log('    (skipped: ../shared/models/darknet-tiny or the kangaroo photos are missing)');
      this.skip();
    }
    await useEngine();
    dir = makeTempDir('gapcam-web-');
    out = path.join(dir, 'page');
  });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  it('shows the top-5 classes, the CAM and the box of `gapcam cam`, from a static server and from file://', async () => {
    const r = await exportWeb({ model: darknetTinyDir, out });
    expect(Object.keys(r.files)).to.include.members(['index.html', 'gapcam-web.js', 'meta.json', 'model/model.json', 'model/model-inline.js', 'tfjs-backend-wasm-simd.wasm']);
    const html = fs.readFileSync(path.join(out, 'index.html'), 'utf8');
    expect(html).to.not.match(/https?:\/\//, 'the page references nothing remote');

    // the CLI on the same photo: raw maps (layer resolution) and normalised maps (input size), the box, the overlay
    const rawRun = await runCam({ model: darknetTinyDir, images: PHOTO, npy: 'raw', out: path.join(dir, 'cli-raw') });
    const normRun = await runCam({ model: darknetTinyDir, images: PHOTO, npy: 'normalized', out: path.join(dir, 'cli-norm') });
    const camJson = JSON.parse(fs.readFileSync(path.join(rawRun.out, 'cam.json'), 'utf8')) as { images: { classes: { classId: number; probability: number }[]; methods: Record<string, { npy: string[]; overlays: string[]; camBox?: number[] }> }[] };
    const cli = camJson.images[0];
    const cliRaw = readNpy(path.join(rawRun.out, cli.methods.cam.npy[0]));
    const normJson = JSON.parse(fs.readFileSync(path.join(normRun.out, 'cam.json'), 'utf8')) as typeof camJson;
    const cliNorm = readNpy(path.join(normRun.out, normJson.images[0].methods.cam.npy[0]));
    const photo = await decodeImage(PHOTO);
    const cliInput = resizeRgb(photo, 224, 224);

    const server = await serve(out);
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1100, height: 640 }, acceptDownloads: true });
      const external: string[] = [];
      page.on('request', (q) => { if (!q.url().startsWith(server.url) && !q.url().startsWith('file:') && !q.url().startsWith('blob:') && !q.url().startsWith('data:')) external.push(q.url()); });
      const state = () => page.evaluate(() => (window as unknown as { __gapcam: PageState }).__gapcam) as Promise<PageState>;
      // waits until the page's state satisfies `cond` (a JS expression on s = window.__gapcam) or reports an error
      const settled = (p: typeof page, cond: string) => p.waitForFunction(`(() => { const s = window.__gapcam; return s.status === 'error' || (${cond}); })()`, undefined, { timeout: 300_000 });

      await page.goto(server.url + 'index.html', { waitUntil: 'load' });
      await settled(page, "s.status === 'ready'");
      await page.setInputFiles('#file', PHOTO);
      await settled(page, "s.status === 'ready' && !!s.map");
      const s = await state();
      expect(s.error, 'page error').to.equal(undefined);
      expect(['webgl', 'wasm', 'cpu']).to.include(s.backend);
      expect((await page.textContent('#backend'))?.toLowerCase()).to.equal(s.backend);

      // the same preprocessing: the model input bytes are the CLI's
      const pageInput = await page.evaluate(() => (window as unknown as { __gapcam: { inputRgb: () => number[] } }).__gapcam.inputRgb());
      expect(maxAbsDiff(pageInput, cliInput), 'model input bytes, page vs CLI').to.equal(0);

      const top = s.top ?? [];
      expect(top).to.have.length(5);
      expect(top[0].classId, 'top-1 class').to.equal(cli.classes[0].classId);
      expect(top[0].probability).to.be.closeTo(cli.classes[0].probability, 1e-3);
      const m = s.map as PageMap;
      expect(m.classId).to.equal(top[0].classId);
      expect([m.h, m.w]).to.deep.equal(cliRaw.shape);
      const rawScale = Math.max(...Array.from(cliRaw.data, Math.abs));
      expect(maxAbsDiff(m.raw, cliRaw.data) / rawScale, 'raw map (layer resolution), relative to its largest value').to.be.below(1e-3);
      expect(maxAbsDiff(m.atInput, cliNorm.data), 'normalised map at the input size').to.be.below(1e-3);
      expect(m.box, 'CAM box').to.not.equal(null);
      expect(maxAbsDiff(m.box as number[], cli.methods.cam.camBox as number[]), 'CAM box corners').to.be.below(1e-6);

      // the overlay the page paints (and downloads) is the CLI's picture
      const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
      const pngFile = path.join(dir, 'download.png');
      await download.saveAs(pngFile);
      const mine = await sharp(pngFile).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      const theirs = await sharp(path.join(rawRun.out, cli.methods.cam.overlays[0])).removeAlpha().raw().toBuffer({ resolveWithObject: true });
      expect([mine.info.width, mine.info.height]).to.deep.equal([photo.width, photo.height]);
      let differing = 0;
      for (let i = 0; i < mine.data.length; i++) if (Math.abs(mine.data[i] - theirs.data[i]) > 2) differing++;
      expect(differing / mine.data.length, 'share of overlay bytes differing by more than 2').to.be.below(0.001);

      // clicking another class shows its map
      await page.click(`#classes li[data-id="${top[1].classId}"]`);
      const s2 = await state();
      expect(s2.selected).to.equal(top[1].classId);
      expect(s2.map?.classId).to.equal(top[1].classId);
      await page.click(`#classes li[data-id="${top[0].classId}"]`);

      await page.screenshot({ path: path.join(dir, 'screenshot.png') });
      if (process.env.GAPCAM_UPDATE_SCREENSHOT) {
        const docs = path.join(projectRoot, 'docs');
        fs.mkdirSync(docs, { recursive: true });
        await sharp(path.join(dir, 'screenshot.png')).resize({ width: 800 }).png({ palette: true, compressionLevel: 9 }).toFile(path.join(docs, 'web-export.png'));
      }

      // analysing another photo leaves no tensor behind
      const tensors = () => page.evaluate(() => (window as unknown as { __gapcam: { tensors: () => number } }).__gapcam.tensors());
      const before = await tensors();
      await page.evaluate(() => { (window as unknown as { __gapcam: PageState }).__gapcam.map = undefined; });
      await page.setInputFiles('#file', PHOTO2);
      await settled(page, "s.status === 'ready' && !!s.map");
      expect((await state()).image?.name).to.equal(path.basename(PHOTO2));
      expect(await tensors(), 'tensors after a second photo').to.equal(before);

      // from file:// (the model comes from model/model-inline.js; the WASM binaries may be refused there)
      const local = await browser.newPage();
      await local.goto(pathToFileURL(path.join(out, 'index.html')).href, { waitUntil: 'load' });
      await settled(local, "s.status === 'ready'");
      await local.setInputFiles('#file', PHOTO);
      await settled(local, "s.status === 'ready' && !!s.map");
      const f = await local.evaluate(() => (window as unknown as { __gapcam: PageState }).__gapcam) as PageState;
      expect(f.error, 'file:// page error').to.equal(undefined);
      expect(f.top?.[0].classId, 'top-1 class from file://').to.equal(cli.classes[0].classId);
      expect(maxAbsDiff((f.map as PageMap).atInput, cliNorm.data)).to.be.below(1e-3);
      // the WASM backend (its .wasm binaries served beside the page) gives the same numbers
      const wasm = await browser.newPage();
      await wasm.goto(server.url + 'index.html?backend=wasm', { waitUntil: 'load' });
      await settled(wasm, "s.status === 'ready'");
      await wasm.setInputFiles('#file', PHOTO);
      await settled(wasm, "s.status === 'ready' && !!s.map");
      const w = await wasm.evaluate(() => (window as unknown as { __gapcam: PageState }).__gapcam) as PageState;
      expect(w.error, 'wasm page error').to.equal(undefined);
      expect(w.backend).to.equal('wasm');
      expect((await wasm.textContent('#backend'))).to.equal('WASM');
      expect(w.top?.[0].classId, 'top-1 class on WASM').to.equal(cli.classes[0].classId);
      expect(maxAbsDiff((w.map as PageMap).atInput, cliNorm.data), 'normalised map on WASM').to.be.below(1e-3);
      expect(w.map?.box).to.deep.equal(m.box);
      console.log(`      backends: ${s.backend} (http), ${f.backend} (file://), ${w.backend} (?backend=wasm); export ${(Object.values(r.files).reduce((a, b) => a + b, 0) / 1e6).toFixed(1)} MB`);
      expect(external, 'requests leaving the page').to.deep.equal([]);
    } finally {
      await browser.close();
      await server.close();
    }
  });
});
