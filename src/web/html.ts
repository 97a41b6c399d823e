// index.html of a web export: the page's markup and style; the meta is embedded as JSON so that nothing needs to be
// fetched before the script runs (browsers refuse fetch on file://).
import type { WebMeta } from './meta.js';
import { WEB_SCRIPT } from './meta.js';

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

/** JSON that is safe inside a <script> element. */
function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

export function indexHtml(meta: WebMeta, title: string): string {
  const facts = [
    `${meta.classNames.length} classes`,
    `input ${meta.inputSize[0]}×${meta.inputSize[1]}, preprocessing ${meta.preprocessing}`,
    `CAM layer ${meta.featureLayer} (${meta.headKind})`,
    `weights ${meta.web.weights}`,
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} — gapcam CAM</title>
<style>
  body { font: 15px/1.45 system-ui, sans-serif; margin: 0; color: #111; background: #f6f6f4; }
  header { padding: 12px 20px; background: #1d2a38; color: #fff; }
  header h1 { font-size: 18px; margin: 0; }
  header p { margin: 2px 0 0; font-size: 13px; opacity: .8; }
  main { display: flex; flex-wrap: wrap; gap: 20px; padding: 16px 20px; }
  #drop { border: 2px dashed #8a96a3; border-radius: 8px; padding: 14px; text-align: center; background: #fff; }
  #drop.over { background: #e3efff; border-color: #2f6fd6; }
  .view { flex: 1 1 480px; min-width: 300px; }
  .side { flex: 0 1 340px; }
  canvas#overlay { max-width: 100%; height: auto; display: block; margin-top: 12px; border-radius: 4px; }
  #classes { list-style: none; padding: 0; margin: 0 0 12px; }
  #classes li { position: relative; padding: 6px 8px; margin-bottom: 4px; background: #fff; border: 1px solid #d6d9dd; border-radius: 5px; cursor: pointer; overflow: hidden; }
  #classes li.on { border-color: #2f6fd6; box-shadow: 0 0 0 2px #2f6fd6 inset; }
  #classes .name { font-weight: 600; position: relative; z-index: 1; }
  #classes .p { float: right; position: relative; z-index: 1; font-variant-numeric: tabular-nums; }
  #classes .bar { position: absolute; left: 0; top: 0; bottom: 0; background: #dbe8fb; z-index: 0; }
  label { display: block; margin: 8px 0; }
  #status, #box { font-size: 13px; color: #444; }
  video { max-width: 100%; }
</style>
</head>
<body>
<header>
  <h1>${escapeHtml(title)}: class activation maps</h1>
  <p>${escapeHtml(facts.join(' · '))} · backend <b id="backend">…</b> · runs entirely in this browser, nothing is uploaded</p>
</header>
<main>
  <section class="view">
    <div id="drop">Drop an image here, or <input type="file" id="file" accept="image/*">
      <button id="camera-start" type="button">use the camera</button></div>
    <div id="camera-box" hidden><video id="camera" playsinline muted></video><br><button id="camera-shoot" type="button">take this frame</button></div>
    <p id="status">loading …</p>
    <canvas id="overlay" width="0" height="0"></canvas>
  </section>
  <section class="side" id="result" hidden>
    <h2 style="font-size:16px;margin:0 0 6px">Top classes (click one for its map)</h2>
    <ol id="classes"></ol>
    <label>heat-map opacity <input type="range" id="opacity" min="0" max="100" value="50"></label>
    <label>colormap <select id="colormap"></select></label>
    <label><input type="checkbox" id="show-box" checked> CAM box (green: pixels ≥ ${Math.round(meta.web.camThreshold * 100)} % of the map's maximum, largest connected region)</label>
    <p id="box"></p>
    <button id="download" type="button">download the overlay (PNG)</button>
  </section>
</main>
<script type="application/json" id="gapcam-meta">${scriptJson(meta)}</script>
<script src="${WEB_SCRIPT}"></script>
</body>
</html>
`;
}
