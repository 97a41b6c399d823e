// Opens a generated gallery in headless Chromium (Debian's `chromium`, driven by playwright-core) and checks that
// every picture loads and that sorting works. Skipped with a message when /usr/bin/chromium is absent
// (scripts/install-test-deps.sh installs it).
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { expect } from 'chai';
import { useEngine, makeTempDir } from '../helpers.js';
import { runCam } from '../../src/cam/service.js';
import { writeTinyModel, writeVocFolder } from './fixtures.js';

const CHROMIUM = process.env.GAPCAM_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

describe('cam gallery in headless Chromium', function () {
  let dir: string;
  before(async function () {
    if (!fs.existsSync(CHROMIUM)) {
      console.log(`    (skipped: ${CHROMIUM} not found; run scripts/install-test-deps.sh as root to install Debian's chromium)`);
      this.skip();
    }
    await useEngine();
    dir = makeTempDir('gapcam-gallery-');
  });
  after(() => { if (dir) fs.rmSync(dir, { recursive: true, force: true }); });

  it('every image of index.html loads, sorting by IoU and score reorders the cards, no network requests', async () => {
    const model = await writeTinyModel(dir);
    const voc = await writeVocFolder(dir, 10);
    const out = path.join(dir, 'gallery');
    const summary = await runCam({ model, dataset: voc, split: 'train', classes: ['top2'], methods: ['cam', 'gradcam'], out });
    const { chromium } = await import('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
    try {
      const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
      const external: string[] = [];
      page.on('request', (r) => { if (!r.url().startsWith('file:')) external.push(r.url()); });
      await page.goto(pathToFileURL(summary.gallery).href, { waitUntil: 'load' });
      const imgs = await page.$$eval('img', (els) => els.map((e) => {
        const img = e as HTMLImageElement;
        return { src: img.getAttribute('src'), ok: img.complete && img.naturalWidth > 0 };
      }));
      expect(imgs.length).to.equal(summary.images * 3); // original + two method overlays per card
      expect(imgs.filter((i) => !i.ok).map((i) => i.src), 'images that failed to load').to.deep.equal([]);
      const order = () => page.$$eval('figure.card', (els) => els.map((e) => ({ iou: Number((e as HTMLElement).dataset.iou), score: Number((e as HTMLElement).dataset.score) })));
      await page.click("button[onclick=\"sortCards('iou',-1)\"]");
      const byIou = (await order()).map((c) => c.iou);
      expect(byIou).to.deep.equal([...byIou].sort((a, b) => b - a));
      await page.click("button[onclick=\"sortCards('score',1)\"]");
      const byScore = (await order()).map((c) => c.score);
      expect(byScore).to.deep.equal([...byScore].sort((a, b) => a - b));
      expect(external).to.deep.equal([]);
      await page.screenshot({ path: path.join(out, 'screenshot.png'), fullPage: true });
      expect(fs.statSync(path.join(out, 'screenshot.png')).size).to.be.greaterThan(1000);
    } finally {
      await browser.close();
    }
  });
});
