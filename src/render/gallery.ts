// The static CAM gallery: one index.html in the output folder, one card per image (original, overlay, class, score,
// IoU when known), sortable by IoU, score or name with a few lines of inline JS. No server, no network: every
// picture is a relative link to a file beside index.html.
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';

export interface GalleryCard {
  id: string;
  /** Paths relative to the gallery folder. */
  original: string;
  /** One overlay per method (label = method name). */
  overlays: { label: string; path: string }[];
  strip?: string;
  /** The class whose map the overlay shows, and its probability. */
  className: string;
  score: number;
  /** Rank of that class in the prediction (1 = top-1). */
  rank?: number;
  /** Ground-truth class name when known. */
  gtClass?: string;
  /** Best IoU of the CAM box with a ground-truth box, when boxes are known. */
  iou?: number;
}

export interface GalleryInfo {
  title: string;
  /** Short facts shown under the title (model, method, layer, colormap …). */
  facts: [string, string][];
  /** Summary lines (e.g. faithfulness metrics). */
  notes?: string[];
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

function href(p: string): string {
  return p.split(path.sep).map(encodeURIComponent).join('/');
}

function card(c: GalleryCard): string {
  const iou = c.iou === undefined ? '' : `<span class="iou ${c.iou >= 0.5 ? 'hit' : 'miss'}">IoU ${c.iou.toFixed(3)}</span>`;
  const gt = c.gtClass === undefined ? '' : `<div class="gt">true class: ${escapeHtml(c.gtClass)}</div>`;
  const rank = c.rank === undefined ? '' : ` <span class="rank">(#${c.rank})</span>`;
  const strip = c.strip ? `<a class="strip" href="${href(c.strip)}">top-5 strip</a>` : '';
  return `<figure class="card" data-name="${escapeHtml(c.id)}" data-score="${c.score}" data-iou="${c.iou ?? -1}">
<div class="pics"><a href="${href(c.original)}"><img src="${href(c.original)}" alt="${escapeHtml(c.id)} original"><span>original</span></a>${c.overlays.map((o) => `<a href="${href(o.path)}"><img src="${href(o.path)}" alt="${escapeHtml(c.id)} ${escapeHtml(o.label)} overlay"><span>${escapeHtml(o.label)}</span></a>`).join('')}</div>
<figcaption><div class="id">${escapeHtml(c.id)}</div><div><b>${escapeHtml(c.className)}</b>${rank} <span class="score">p = ${c.score.toFixed(3)}</span> ${iou}</div>${gt}${strip}</figcaption>
</figure>`;
}

const STYLE = `body{font-family:system-ui,DejaVu Sans,sans-serif;margin:16px;background:#f4f4f4;color:#111}
h1{font-size:20px;margin:0 0 6px}.facts{font-size:13px;color:#444;margin-bottom:8px}.facts span{margin-right:14px}
.notes{font-size:13px;white-space:pre;background:#fff;padding:6px;border:1px solid #ddd;margin-bottom:8px}
.bar{margin:8px 0}.bar button{margin-right:6px;padding:4px 10px}
.grid{display:flex;flex-wrap:wrap;gap:12px}.card{background:#fff;border:1px solid #ccc;margin:0;padding:8px;width:max-content}
.pics{display:flex;gap:4px}.pics a{flex:0 0 200px;text-decoration:none;color:#555;font-size:11px;text-align:center}
.pics img{display:block;width:200px;height:150px;object-fit:contain;background:#222}
figcaption{font-size:13px;margin-top:4px}.id{color:#666}.iou.hit{color:#070}.iou.miss{color:#b00}.score,.rank{color:#333}
.gt{color:#555}.strip{font-size:12px}`;

const SCRIPT = `function sortCards(key, dir){var g=document.getElementById('grid');var cs=Array.prototype.slice.call(g.children);
cs.sort(function(a,b){if(key==='name'){return dir*a.dataset.name.localeCompare(b.dataset.name,undefined,{numeric:true});}
return dir*(parseFloat(a.dataset[key])-parseFloat(b.dataset[key]));});cs.forEach(function(c){g.appendChild(c);});
document.getElementById('order').textContent=key+(dir<0?' ↓':' ↑');}`;

/** The gallery page. */
export function galleryHtml(info: GalleryInfo, cards: GalleryCard[]): string {
  const hasIou = cards.some((c) => c.iou !== undefined);
  const facts = info.facts.map(([k, v]) => `<span>${escapeHtml(k)}: <b>${escapeHtml(v)}</b></span>`).join('');
  const notes = info.notes?.length ? `<div class="notes">${escapeHtml(info.notes.join('\n'))}</div>` : '';
  const buttons = [
    hasIou ? `<button onclick="sortCards('iou',-1)">IoU ↓</button><button onclick="sortCards('iou',1)">IoU ↑</button>` : '',
    `<button onclick="sortCards('score',-1)">score ↓</button><button onclick="sortCards('score',1)">score ↑</button>`,
    `<button onclick="sortCards('name',1)">name</button>`,
  ].join('');
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(info.title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(info.title)}</h1><div class="facts">${facts}<span>images: <b>${cards.length}</b></span></div>${notes}
<div class="bar">sort: ${buttons} <span id="order">name ↑</span></div>
<div id="grid" class="grid">
${cards.map(card).join('\n')}
</div>
<script>${SCRIPT}</script>
</body></html>
`;
}

/** Writes `dir/index.html` (atomically). */
export async function writeGallery(dir: string, info: GalleryInfo, cards: GalleryCard[]): Promise<string> {
  const file = path.join(dir, 'index.html');
  await writeFileAtomic(file, galleryHtml(info, cards));
  return file;
}
