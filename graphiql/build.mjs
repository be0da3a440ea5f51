// Bundles the IDE into app/static/graphiql (or the directory given as the first argument):
// graphiql.js + graphiql.css for the page, one script per Monaco web worker, and the fonts.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(process.argv[2] ?? path.join(here, '..', 'app', 'static', 'graphiql'));

rmSync(outdir, { recursive: true, force: true });
await esbuild.build({
  absWorkingDir: here,
  entryPoints: {
    graphiql: 'src/main.jsx',
    'editor.worker': 'src/workers/editor.worker.js',
    'json.worker': 'src/workers/json.worker.js',
    'graphql.worker': 'src/workers/graphql.worker.js',
  },
  outdir,
  bundle: true,
  // Classic scripts: the page loads graphiql.js with a plain <script>, Monaco starts workers
  // with `new Worker(url)`, and no chunk is fetched later.
  format: 'iife',
  minify: true,
  sourcemap: false,
  target: ['es2022'],
  jsx: 'automatic',
  loader: { '.ttf': 'file', '.woff': 'file', '.woff2': 'file', '.svg': 'file' },
  assetNames: '[name]-[hash]',
  define: { 'process.env.NODE_ENV': '"production"' },
  legalComments: 'linked',
  logLevel: 'warning',
});
console.log(`GraphiQL bundle written to ${path.relative(process.cwd(), outdir) || outdir}`);
