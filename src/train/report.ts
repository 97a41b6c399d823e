// report.html: a static page (no scripts, no external files) with the loss, accuracy and learning-rate curves as
// inline SVG, the epoch table, the final metrics and the resolved recipe. Rewritten atomically after every epoch.
import path from 'node:path';
import { writeFileAtomic } from '../util/atomic.js';
import type { MetricsRow, EpochRow, StepRow } from './metrics.js';

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
  /** Draw markers at each point (for sparse per-epoch series). */
  markers?: boolean;
}

export function escapeHtml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) return [];
  if (hi === lo) {
    const d = Math.abs(lo) || 1;
    lo -= d / 2;
    hi += d / 2;
  }
  const raw = (hi - lo) / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

function fmt(v: number | null | undefined): string {
  if (v === null || v === undefined) return ''; // NaN is written as null in metrics.jsonl
  if (v === 0 || !Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a >= 1e4 || a < 1e-3) return v.toExponential(1);
  return String(Number(v.toPrecision(4)));
}

/** One line chart as an inline SVG element. */
export function lineChart(title: string, series: Series[], xLabel: string, opts: { yMin?: number; yMax?: number; logY?: boolean } = {}): string {
  const W = 640, H = 260, L = 60, R = 16, T = 28, B = 40;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0));
  if (all.length === 0) {
    return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" role="img"><text x="${W / 2}" y="${H / 2}" text-anchor="middle" fill="#666">${escapeHtml(title)}: no data yet</text></svg>`;
  }
  const tf = (y: number) => (opts.logY ? Math.log10(y) : y);
  let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
  let y0 = opts.yMin ?? Math.min(...all.map((p) => tf(p[1]))), y1 = opts.yMax ?? Math.max(...all.map((p) => tf(p[1])));
  if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
  if (y1 === y0) { const d = Math.abs(y0) * 0.1 || 0.5; y0 -= d; y1 += d; }
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
  const sy = (y: number) => T + (1 - (tf(y) - y0) / (y1 - y0)) * (H - T - B);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(title)}">`);
  parts.push(`<text x="${L}" y="18" font-size="14" font-weight="bold">${escapeHtml(title)}</text>`);
  for (const t of niceTicks(y0, y1)) {
    const y = T + (1 - (t - y0) / (y1 - y0)) * (H - T - B);
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y.toFixed(1)}" y2="${y.toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${L - 6}" y="${(y + 4).toFixed(1)}" font-size="11" text-anchor="end">${fmt(opts.logY ? Math.pow(10, t) : t)}</text>`);
  }
  for (const t of niceTicks(x0, x1)) {
    const x = sx(t);
    parts.push(`<line x1="${x.toFixed(1)}" x2="${x.toFixed(1)}" y1="${T}" y2="${H - B}" stroke="#eee"/>`);
    parts.push(`<text x="${x.toFixed(1)}" y="${H - B + 16}" font-size="11" text-anchor="middle">${fmt(t)}</text>`);
  }
  parts.push(`<rect x="${L}" y="${T}" width="${W - L - R}" height="${H - T - B}" fill="none" stroke="#999"/>`);
  parts.push(`<text x="${(L + W - R) / 2}" y="${H - 6}" font-size="12" text-anchor="middle">${escapeHtml(xLabel)}</text>`);
  let legendX = L + 200;
  for (const s of series) {
    const pts = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!opts.logY || y > 0));
    if (pts.length === 0) continue;
    const d = pts.map(([x, y], i) => `${i ? 'L' : 'M'}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join('');
    parts.push(`<path d="${d}" fill="none" stroke="${s.color}" stroke-width="1.5"/>`);
    if (s.markers) for (const [x, y] of pts) parts.push(`<circle cx="${sx(x).toFixed(1)}" cy="${sy(y).toFixed(1)}" r="3" fill="${s.color}"/>`);
    parts.push(`<rect x="${legendX}" y="10" width="12" height="3" fill="${s.color}"/><text x="${legendX + 16}" y="16" font-size="11">${escapeHtml(s.name)}</text>`);
    legendX += 24 + s.name.length * 6.5;
  }
  parts.push('</svg>');
  return parts.join('');
}

/** Mean of each run of `window` consecutive points (keeps a noisy per-step curve readable). */
function smooth(points: [number, number][], window: number): [number, number][] {
  if (window <= 1) return points;
  const out: [number, number][] = [];
  for (let i = 0; i < points.length; i += window) {
    const chunk = points.slice(i, i + window);
    out.push([chunk[chunk.length - 1][0], chunk.reduce((a, p) => a + p[1], 0) / chunk.length]);
  }
  return out;
}

export interface ReportInput {
  runName: string;
  runDir: string;
  rows: MetricsRow[];
  recipe: unknown;
  /** Headline numbers (final validation, evaluation results, …). */
  final?: Record<string, string | number>;
  status: string;
  engine?: string;
  /** Shown as the report's first line (e.g. a model selected on the test split). */
  notice?: string;
}

export function renderReport(input: ReportInput): string {
  const steps = input.rows.filter((r): r is StepRow => r.kind === 'step');
  const epochs = input.rows.filter((r): r is EpochRow => r.kind === 'epoch');
  const spe = epochs.length ? epochs[0].step / epochs[0].epoch : Math.max(1, steps.length);
  const x = (step: number) => step / (spe || 1);
  const window = Math.max(1, Math.floor(steps.length / 200));
  const lossChart = lineChart('Loss', [
    { name: 'train (steps)', color: '#9ecae1', points: smooth(steps.map((r) => [x(r.step), r.loss]), window) },
    { name: 'train (epoch mean)', color: '#08519c', points: epochs.map((r) => [r.epoch, r.loss]), markers: true },
    { name: 'validation', color: '#e6550d', points: epochs.filter((r) => r.valLoss !== undefined).map((r) => [r.epoch, r.valLoss!]), markers: true },
  ], 'epoch');
  const accChart = lineChart('Top-1 accuracy', [
    { name: 'train (steps)', color: '#a1d99b', points: smooth(steps.map((r) => [x(r.step), r.acc]), window) },
    { name: 'train (epoch)', color: '#006d2c', points: epochs.map((r) => [r.epoch, r.acc]), markers: true },
    { name: 'validation', color: '#e6550d', points: epochs.filter((r) => r.valAcc !== undefined).map((r) => [r.epoch, r.valAcc!]), markers: true },
  ], 'epoch', { yMin: 0, yMax: 1 });
  const lrChart = lineChart('Learning rate', [{ name: 'lr', color: '#756bb1', points: steps.map((r) => [x(r.step), r.lr]) }], 'epoch');
  const rowsHtml = epochs.map((r) => `<tr><td>${r.epoch}</td><td>${r.step}</td><td>${fmt(r.loss)}</td><td>${(r.acc * 100).toFixed(2)}%</td>` +
    `<td>${r.valLoss === undefined ? '' : fmt(r.valLoss)}</td><td>${r.valAcc === undefined ? '' : (r.valAcc * 100).toFixed(2) + '%'}</td>` +
    `<td>${fmt(r.lr)}</td><td>${r.imagesPerSec.toFixed(1)}</td><td>${r.seconds.toFixed(1)}</td><td>${r.best ? '★' : ''}</td></tr>`).join('\n');
  const finalHtml = input.final && Object.keys(input.final).length
    ? `<table>${Object.entries(input.final).map(([k, v]) => `<tr><th>${escapeHtml(k)}</th><td>${escapeHtml(String(v))}</td></tr>`).join('')}</table>`
    : '<p>(none yet)</p>';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>gapcam run ${escapeHtml(input.runName)}</title>
<style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1340px}table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#f4f4f4}pre{background:#f7f7f7;padding:12px;font-size:12px;overflow:auto}
.charts{display:flex;flex-wrap:wrap;gap:16px}</style></head>
<body>
${input.notice ? `<p style="color:#b00;font-weight:bold">${escapeHtml(input.notice)}</p>\n` : ''}<h1>gapcam run <code>${escapeHtml(input.runName)}</code></h1>
<p>${escapeHtml(input.status)}${input.engine ? ' · ' + escapeHtml(input.engine) : ''} · folder <code>${escapeHtml(path.resolve(input.runDir))}</code> · updated ${new Date().toISOString()}</p>
<h2>Final metrics</h2>
${finalHtml}
<h2>Curves</h2>
<div class="charts">${lossChart}${accChart}${lrChart}</div>
<h2>Epochs</h2>
<table><tr><th>epoch</th><th>step</th><th>train loss</th><th>train acc</th><th>val loss</th><th>val top-1</th><th>lr</th><th>images/s</th><th>seconds</th><th>best</th></tr>
${rowsHtml}
</table>
<h2>Resolved recipe</h2>
<pre>${escapeHtml(JSON.stringify(input.recipe, null, 2))}</pre>
</body></html>
`;
}

export async function writeReport(input: ReportInput): Promise<string> {
  const file = path.join(input.runDir, 'report.html');
  await writeFileAtomic(file, renderReport(input));
  return file;
}
