// The layout registry: a new layout is one file in src/data/adapters plus one line here.
import type { LayoutAdapter } from './types.js';
import { cubAdapter } from './cub.js';
import { vocAdapter } from './voc.js';
import { folderAdapter } from './folder.js';
import { csvAdapter } from './csv.js';

export type LayoutName = 'cub' | 'voc' | 'folder' | 'csv';

/** Detection order matters: the most specific layouts first. */
export const layouts: Record<LayoutName, LayoutAdapter> = {
  cub: cubAdapter,
  voc: vocAdapter,
  csv: csvAdapter,
  folder: folderAdapter,
};

export function layoutNames(): LayoutName[] {
  return Object.keys(layouts) as LayoutName[];
}

/** The first layout whose detect() accepts `root`, if any. */
export function detectLayout(root: string): LayoutName | undefined {
  return layoutNames().find((n) => layouts[n].detect(root));
}

export type { LayoutAdapter, LayoutOptions } from './types.js';
