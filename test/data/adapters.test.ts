import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { useEngine, makeTempDir, sharedDatasetsDir, expectUserError } from '../helpers.js';
import { loadDataset, datasetNames, listDatasets } from '../../src/data/datasets.js';
import { split, splitCounts } from '../../src/data/split.js';
import { loadCub } from '../../src/data/adapters/cub.js';
import { loadVocFolders } from '../../src/data/adapters/voc.js';
import { loadImageFolder } from '../../src/data/adapters/folder.js';
import { loadCsvManifest } from '../../src/data/adapters/csv.js';
import { detectLayout } from '../../src/data/adapters/index.js';
import { clearSizeMemo } from '../../src/data/sizes.js';
import { UserError } from '../../src/errors.js';

async function png(file: string, w: number, h: number, v = 128): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  await sharp({ create: { width: w, height: h, channels: 3, background: { r: v, g: v, b: v } } }).png().toFile(file);
}

/** A miniature CUB-200-2011 tree: 3 classes, 6 images (sizes 40×30 / 30×40), one box each. */
async function writeMiniCub(root: string, edit: Partial<Record<string, string>> = {}): Promise<void> {
  const files: Record<string, string> = {
    'classes.txt': '1 001.Alpha\n2 002.Beta bird\n3 003.Gamma\n',
    'images.txt': '1 001.Alpha/a1.png\n2 001.Alpha/a2.png\n3 002.Beta bird/b1.png\n4 002.Beta bird/b2.png\n5 003.Gamma/g1.png\n6 003.Gamma/g2.png\n',
    'image_class_labels.txt': '1 1\n2 1\n3 2\n4 2\n5 3\n6 3\n',
    'train_test_split.txt': '1 1\n2 0\n3 1\n4 0\n5 1\n6 0\n',
    'bounding_boxes.txt': '1 2.0 3.0 10.0 5.0\n2 0.0 0.0 40.0 30.0\n3 1.5 2.5 4.0 6.0\n4 5 5 1 1\n5 0 0 30 40\n6 10 20 5 5\n',
    ...edit,
  } as Record<string, string>;
  for (const [f, text] of Object.entries(files)) if (text !== undefined) fs.writeFileSync(path.join(root, f), text);
  for (const [i, rel] of ['001.Alpha/a1.png', '001.Alpha/a2.png', '002.Beta bird/b1.png', '002.Beta bird/b2.png', '003.Gamma/g1.png', '003.Gamma/g2.png'].entries()) {
    await png(path.join(root, 'images', rel), i < 4 ? 40 : 30, i < 4 ? 30 : 40);
  }
}

describe('data/adapters', () => {
  before(useEngine);
  let savedCache: string | undefined;
  before(() => { savedCache = process.env.GAPCAM_CACHE_DIR; process.env.GAPCAM_CACHE_DIR = makeTempDir(); });
  after(() => { if (savedCache === undefined) delete process.env.GAPCAM_CACHE_DIR; else process.env.GAPCAM_CACHE_DIR = savedCache; });

  describe('CUB-200-2011', () => {
    it('reads the official layout: 0-based labels, splits, sizes from headers, boxes x y w h → inclusive corners', async () => {
      const root = makeTempDir();
      await writeMiniCub(root);
      const ds = await loadCub(root);
      expect(ds.classNames).to.deep.equal(['001.Alpha', '002.Beta bird', '003.Gamma']);
      expect(ds.records.map((r) => [r.id, r.label, r.split, r.width, r.height])).to.deep.equal([
        ['1', 0, 'train', 40, 30], ['2', 0, 'test', 40, 30], ['3', 1, 'train', 40, 30],
        ['4', 1, 'test', 40, 30], ['5', 2, 'train', 30, 40], ['6', 2, 'test', 30, 40],
      ]);
      expect(ds.records.map((r) => r.boxes)).to.deep.equal([
        [[2, 3, 11, 7]], [[0, 0, 39, 29]], [[1.5, 2.5, 4.5, 7.5]], [[5, 5, 5, 5]], [[0, 0, 29, 39]], [[10, 20, 14, 24]],
      ]);
      expect(ds.records[2].path).to.equal(path.join(root, 'images', '002.Beta bird', 'b1.png'));
      expect(splitCounts(ds)).to.deep.equal({ train: 3, test: 3 });
      expect(detectLayout(root)).to.equal('cub');
    });

    it('keeps image sizes in an on-disk table per folder, used while size and mtime match', async () => {
      const root = makeTempDir();
      await writeMiniCub(root);
      await loadCub(root);
      const dir = path.join(process.env.GAPCAM_CACHE_DIR!, 'sizes');
      const [tableFile] = fs.readdirSync(dir).map((f) => path.join(dir, f)).filter((f) => fs.readFileSync(f, 'utf8').includes(root));
      const table = JSON.parse(fs.readFileSync(tableFile, 'utf8')) as Record<string, [string, number, number]>;
      const a1 = path.join(root, 'images', '001.Alpha', 'a1.png');
      expect(table[a1].slice(1)).to.deep.equal([40, 30]);
      // a new process (empty memo) reads sizes from the table while size and mtime match …
      table[a1] = [table[a1][0], 99, 77];
      fs.writeFileSync(tableFile, JSON.stringify(table));
      clearSizeMemo();
      expect([(await loadCub(root)).records[0].width, (await loadCub(root)).records[0].height]).to.deep.equal([99, 77]);
      // … and reads the header again once the file changes
      await png(a1, 40, 30, 7);
      clearSizeMemo();
      expect((await loadCub(root)).records[0].width).to.equal(40);
    });

    it('takes sizes from image_sizes.txt when present (no header reads)', async () => {
      const root = makeTempDir();
      await writeMiniCub(root);
      fs.writeFileSync(path.join(root, 'image_sizes.txt'), '1 40 30\n2 40 30\n3 40 30\n4 40 30\n5 30 40\n6 30 40\n');
      const ds = await loadCub(root);
      expect(ds.records[4].width).to.equal(30);
    });

    it('a missing image named in images.txt: one-line error naming the file and line, or a counted skip', async () => {
      const root = makeTempDir();
      await writeMiniCub(root);
      fs.rmSync(path.join(root, 'images', '002.Beta bird', 'b1.png'));
      await expectUserError(loadCub(root), 'images.txt line 3', 'b1.png', 'not found');
      const ds = await loadCub(root, { skipBadImages: true });
      expect(ds.records.length).to.equal(5);
      expect(ds.skipped!.length).to.equal(1);
      expect(ds.skipped![0].file).to.include('b1.png');
    });

    it('an empty or non-image file is named with its images.txt line', async () => {
      const root = makeTempDir();
      await writeMiniCub(root);
      fs.writeFileSync(path.join(root, 'images', '001.Alpha', 'a2.png'), '');
      await expectUserError(loadCub(root), 'images.txt line 2', 'a2.png', 'empty');
      fs.writeFileSync(path.join(root, 'images', '001.Alpha', 'a2.png'), 'hello, not a PNG');
      await expectUserError(loadCub(root), 'images.txt line 2', 'a2.png', 'cannot');
    });

    it('a box outside its image or of zero area names bounding_boxes.txt and the line', async () => {
      const root = makeTempDir();
      await writeMiniCub(root, { 'bounding_boxes.txt': '1 2 3 10 5\n2 30 25 20 10\n3 1 2 4 6\n4 5 5 1 1\n5 0 0 30 40\n6 10 20 5 5\n' });
      await expectUserError(loadCub(root), 'bounding_boxes.txt line 2', 'outside');
      await writeMiniCub(root, { 'bounding_boxes.txt': '1 2 3 10 5\n2 0 0 4 4\n3 1 2 4 6\n4 5 5 0 3\n5 0 0 30 40\n6 10 20 5 5\n' });
      await expectUserError(loadCub(root), 'bounding_boxes.txt line 4', 'zero area');
      const ds = await loadCub(root, { skipBadImages: true });
      expect(ds.records.map((r) => r.id)).to.not.include('4');
      expect(ds.skipped).to.have.length(1);
    });

    it('a class id out of range names image_class_labels.txt and the line', async () => {
      const root = makeTempDir();
      await writeMiniCub(root, { 'image_class_labels.txt': '1 1\n2 1\n3 2\n4 7\n5 3\n6 3\n' });
      await expectUserError(loadCub(root), 'image_class_labels.txt line 4', 'out of range');
    });

    it('an empty split is a one-line error naming the dataset', async () => {
      const root = makeTempDir();
      await writeMiniCub(root, { 'train_test_split.txt': '1 1\n2 1\n3 1\n4 1\n5 1\n6 1\n' });
      const ds = await loadCub(root);
      expect(split(ds, 'train')).to.have.length(6);
      await expectUserError(() => split(ds, 'test'), 'no test images', 'train 6');
    });

    it('cub200 missing: says where it looked, where the archive comes from and how to unpack it', async () => {
      const root = makeTempDir();
      const msg = await expectUserError(loadDataset('cub200', { dataRoot: root }), path.join(root, 'cub200', 'CUB_200_2011'), 'CUB_200_2011.tgz', 'Caltech', 'tar xzf CUB_200_2011.tgz -C');
      expect(msg.length).to.be.lessThan(400);
      fs.mkdirSync(path.join(root, 'cub200', 'CUB_200_2011'), { recursive: true });
      await writeMiniCub(path.join(root, 'cub200', 'CUB_200_2011'));
      const ds = await loadDataset('cub200', { dataRoot: root });
      expect(ds.name).to.equal('cub200');
      expect(ds.records).to.have.length(6);
    });
  });

  describe('Pascal VOC folders', () => {
    const xml = (file: string, w: number, h: number, objs: [string, number, number, number, number][]) =>
      `<annotation><filename>${file}</filename><size><width>${w}</width><height>${h}</height><depth>3</depth></size>` +
      objs.map(([n, a, b, c, d]) => `<object><name>${n}</name><bndbox><xmin>${a}</xmin><ymin>${b}</ymin><xmax>${c}</xmax><ymax>${d}</ymax></bndbox></object>`).join('') +
      '</annotation>';
    async function vocFolder(root: string, name: string, items: [string, [string, number, number, number, number][]][]): Promise<string> {
      const f = path.join(root, name);
      fs.mkdirSync(path.join(f, 'annotations'), { recursive: true });
      for (const [stem, objs] of items) {
        await png(path.join(f, 'images', `${stem}.png`), 50, 40);
        fs.writeFileSync(path.join(f, 'annotations', `${stem}.xml`), xml(`${stem}.png`, 50, 40, objs));
      }
      return f;
    }

    it('combines folders into one multi-class dataset (class from the folder), 1-based VOC boxes → 0-based', async () => {
      const root = makeTempDir();
      const cats = await vocFolder(root, 'cats', [['c1', [['cat', 1, 1, 50, 40]]], ['c2', [['cat', 10, 5, 20, 15], ['cat', 30, 30, 31, 31]]], ['c3', [['cat', 2, 2, 3, 3]]]]);
      const dogs = await vocFolder(root, 'dogs', [['d1', [['dog', 5, 6, 7, 8]]], ['d2', [['dog', 1, 1, 2, 2]]]]);
      const ds = await loadVocFolders([cats, dogs]);
      expect(ds.classNames).to.deep.equal(['cats', 'dogs']);
      const byId = Object.fromEntries(ds.records.map((r) => [r.id, r]));
      expect(Object.keys(byId).sort()).to.deep.equal(['cats/c1', 'cats/c2', 'cats/c3', 'dogs/d1', 'dogs/d2']);
      expect(byId['cats/c1'].boxes).to.deep.equal([[0, 0, 49, 39]]);
      expect(byId['cats/c2'].boxes).to.deep.equal([[9, 4, 19, 14], [29, 29, 30, 30]]);
      expect(byId['dogs/d1'].label).to.equal(1);
      expect([byId['cats/c1'].width, byId['cats/c1'].height]).to.deep.equal([50, 40]);
      // a folder of VOC folders loads the same way through the registry, with the class from <name> when asked
      const viaPath = await loadDataset(root, { classFrom: 'name' });
      expect(viaPath.classNames).to.deep.equal(['cat', 'dog']);
      expect(viaPath.records).to.have.length(5);
    });

    it('takes the split from ImageSets/Main lists in the official VOC layout (JPEGImages/ + Annotations/)', async () => {
      const root = makeTempDir();
      const f = path.join(root, 'VOC2007');
      fs.mkdirSync(path.join(f, 'Annotations'), { recursive: true });
      fs.mkdirSync(path.join(f, 'ImageSets', 'Main'), { recursive: true });
      for (const [stem, name] of [['000001', 'cat'], ['000002', 'dog'], ['000003', 'cat'], ['000004', 'dog']]) {
        await png(path.join(f, 'JPEGImages', `${stem}.jpg`), 50, 40);
        fs.writeFileSync(path.join(f, 'Annotations', `${stem}.xml`), xml(`${stem}.jpg`, 50, 40, [[name, 1, 1, 9, 9]]));
      }
      fs.writeFileSync(path.join(f, 'ImageSets', 'Main', 'trainval.txt'), '000001\n000002\n');
      fs.writeFileSync(path.join(f, 'ImageSets', 'Main', 'test.txt'), '000003\n');
      const ds = await loadDataset(f);
      expect(ds.classNames).to.deep.equal(['cat', 'dog']);
      expect(ds.records.map((r) => [r.id, r.label, r.split])).to.deep.equal([['000001', 0, 'train'], ['000002', 1, 'train'], ['000003', 0, 'test']]);
    });

    it('an XML that does not parse: one-line error naming the file and line, or a counted skip', async () => {
      const root = makeTempDir();
      const f = await vocFolder(root, 'birds', [['b1', [['bird', 1, 1, 5, 5]]], ['b2', [['bird', 1, 1, 5, 5]]]]);
      fs.writeFileSync(path.join(f, 'annotations', 'b2.xml'), '<annotation>\n<size><width>50</width>\n</annotation>');
      await expectUserError(loadVocFolders([f]), 'b2.xml', 'line', 'not valid XML');
      const ds = await loadVocFolders([f], { skipBadImages: true });
      expect(ds.records).to.have.length(1);
      expect(ds.skipped![0].file).to.include('b2.xml');
    });

    it('wild2 from ../shared/datasets: 164 kangaroos + 200 raccoons, fixed disjoint split', async () => {
      const a = await loadDataset('wild2', { dataRoot: sharedDatasetsDir });
      const b = await loadDataset('wild2', { dataRoot: sharedDatasetsDir });
      expect(a.classNames).to.deep.equal(['kangaroo', 'raccoon']);
      expect(a.records).to.have.length(364);
      expect(a.records.filter((r) => r.label === 0)).to.have.length(164);
      expect(a.records.filter((r) => r.label === 1)).to.have.length(200);
      const train = split(a, 'train').map((r) => r.id), test = split(a, 'test').map((r) => r.id);
      expect(train.length + test.length).to.equal(364);
      expect(train.filter((id) => test.includes(id))).to.be.empty;
      expect(test.filter((id) => id.startsWith('kangaroo/'))).to.have.length(49);
      expect(test).to.have.length(109);
      expect(split(b, 'test').map((r) => r.id)).to.deep.equal(test);
      expect([...test].sort().slice(0, 4)).to.deep.equal(['kangaroo/00006', 'kangaroo/00007', 'kangaroo/00011', 'kangaroo/00014']);
      for (const r of a.records) {
        expect(r.boxes.length, r.id).to.be.greaterThan(0);
        for (const bx of r.boxes) expect(bx[0] >= 0 && bx[1] >= 0 && bx[2] <= r.width - 1 && bx[3] <= r.height - 1, r.id).to.equal(true);
      }
      const k1 = a.records.find((r) => r.id === 'kangaroo/00001')!;
      expect(k1.boxes).to.deep.equal([[232, 88, 385, 261], [133, 104, 340, 252]]);
      expect([k1.width, k1.height]).to.deep.equal([450, 319]);
    });

    it('wild2 missing names the folders and where the photo sets are', async () => {
      await expectUserError(loadDataset('wild2', { dataRoot: makeTempDir() }), 'kangaroo', 'raccoon', '--data-root');
    });
  });

  describe('image folders and CSV manifests', () => {
    it('reads root/<class>/* with a fixed seeded split, and root/train|test/<class>/* as given', async () => {
      const root = makeTempDir();
      for (const c of ['ant', 'bee']) for (let i = 0; i < 5; i++) await png(path.join(root, c, `${i}.png`), 8 + i, 6);
      fs.writeFileSync(path.join(root, 'ant', 'notes.txt'), 'ignored');
      const ds = await loadImageFolder(root);
      expect(ds.classNames).to.deep.equal(['ant', 'bee']);
      expect(ds.records).to.have.length(10);
      expect(splitCounts(ds)).to.deep.equal({ train: 6, test: 4 });
      expect(ds.records.find((r) => r.id === 'bee/3.png')!.width).to.equal(11);
      const fixed = await loadImageFolder(root, { trainPerClass: 2, testPerClass: 2 });
      expect(splitCounts(fixed)).to.deep.equal({ train: 4, test: 4 });
      const again = await loadImageFolder(root);
      expect(again.records.map((r) => r.split)).to.deep.equal(ds.records.map((r) => r.split));
      const root2 = makeTempDir();
      await png(path.join(root2, 'train', 'x', '1.png'), 4, 4);
      await png(path.join(root2, 'train', 'y', '1.png'), 4, 4);
      await png(path.join(root2, 'test', 'y', '2.jpg'), 4, 4);
      const ds2 = await loadDataset(root2);
      expect(ds2.classNames).to.deep.equal(['x', 'y']);
      expect(ds2.records.map((r) => [r.id, r.label, r.split])).to.deep.equal([['train/x/1.png', 0, 'train'], ['train/y/1.png', 1, 'train'], ['test/y/2.jpg', 1, 'test']]);
    });

    it('reads path,label,x0,y0,x1,y1,split with paths relative to the CSV, several boxes per image', async () => {
      const root = makeTempDir();
      await png(path.join(root, 'imgs', 'a.png'), 20, 10);
      await png(path.join(root, 'imgs', 'b.png'), 20, 10);
      const csv = path.join(root, 'list.csv');
      fs.writeFileSync(csv, 'path,label,x0,y0,x1,y1,split\nimgs/a.png,zebra,1,2,3,4,train\nimgs/a.png,zebra,5,5,9,9,train\nimgs/b.png,ant,,,,,test\n');
      const ds = await loadCsvManifest(csv);
      expect(ds.classNames).to.deep.equal(['ant', 'zebra']);
      expect(ds.records.map((r) => [r.id, r.label, r.split, r.boxes])).to.deep.equal([
        ['imgs/a.png', 1, 'train', [[1, 2, 3, 4], [5, 5, 9, 9]]],
        ['imgs/b.png', 0, 'test', []],
      ]);
      expect((await loadDataset(csv)).records).to.have.length(2);
    });

    it('a CSV with a missing column, or a bad box, is a one-line error naming the file (and line)', async () => {
      const root = makeTempDir();
      await png(path.join(root, 'a.png'), 20, 10);
      const csv = path.join(root, 'bad.csv');
      fs.writeFileSync(csv, 'path,x0,y0,x1,y1\na.png,1,1,2,2\n');
      await expectUserError(loadCsvManifest(csv), csv, "missing column 'label'");
      fs.writeFileSync(csv, 'path,label,x0,y0,x1\na.png,cat,1,1,2\n');
      await expectUserError(loadCsvManifest(csv), csv, 'x0,y0,x1,y1');
      fs.writeFileSync(csv, 'path,label,x0,y0,x1,y1\na.png,cat,1,1,25,5\n');
      await expectUserError(loadCsvManifest(csv), csv, 'line 2', 'outside');
      fs.writeFileSync(csv, 'path,label\nmissing.png,cat\n');
      await expectUserError(loadCsvManifest(csv), csv, 'line 2', 'missing.png', 'not found');
    });
  });

  it('names: the registry lists digits-loc, cub200 and wild2; unknown names are one-line errors', async () => {
    expect(datasetNames()).to.deep.equal(['digits-loc', 'cub200', 'wild2']);
    await expectUserError(loadDataset('no-such-set', { dataRoot: makeTempDir() }), "unknown dataset 'no-such-set'", 'digits-loc');
    const list = await listDatasets(sharedDatasetsDir);
    const wild2 = list.find((d) => d.name === 'wild2')!;
    expect(wild2.present).to.equal(true);
    expect(wild2.counts).to.deep.equal({ train: 255, test: 109 });
    expect(list.find((d) => d.name === 'cub200')!.present).to.equal(false);
  });
});
