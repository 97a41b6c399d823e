// The page's one script, bundled at export time with esbuild: src/web/page.ts (or its compiled page.js under dist/),
// the gapcam modules it imports, and TensorFlow.js with its WASM backend from node_modules — no CDN.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

/** The page's entry: the TypeScript source when running from src/ (tsx), the compiled file under dist/. */
export function pageEntry(): string {
  const entry = ['page.ts', 'page.js'].map((f) => path.join(here, f)).find((f) => fs.existsSync(f));
  if (!entry) throw new Error(`web export: the page script (page.ts or page.js) is missing from ${here}`);
  return entry;
}

/** The minified IIFE bundle (a classic script, which browsers also run from file://). */
export async function bundlePage(): Promise<Uint8Array> {
  const esbuild = await import('esbuild');
  const result = await esbuild.build({
    entryPoints: [pageEntry()],
    bundle: true,
    format: 'iife',
    platform: 'browser',
    target: 'es2020',
    minify: true,
    write: false,
    logLevel: 'silent',
    legalComments: 'eof',
    define: { 'process.env.NODE_ENV': '"production"' },
  });
  return result.outputFiles[0].contents;
}

/** The WebAssembly binaries of @tensorflow/tfjs-backend-wasm (plain, SIMD, threaded SIMD): file name → path. */
export function wasmBinaries(): Map<string, string> {
  const dir = path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/dist/tfjs-backend-wasm.wasm'));
  const out = new Map<string, string>();
  for (const name of fs.readdirSync(dir).filter((f) => f.endsWith('.wasm')).sort()) out.set(name, path.join(dir, name));
  return out;
}
