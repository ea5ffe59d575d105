// Bundle src/main.js (Spark + three.js) into dist/viewer.js: one self-contained IIFE that stage report inlines
// into reports/index.html. Deterministic (pinned esbuild, no timestamps), so equal sources give equal bytes.
//   npm ci && node build.mjs        (make env does both when node is present)
import { build } from "esbuild";

await build({
  entryPoints: ["src/main.js"],
  bundle: true,
  format: "iife",
  minify: true,
  legalComments: "eof", // keep the MIT notices of three.js and Spark
  target: ["chrome110"],
  outfile: "dist/viewer.js",
  logLevel: "warning",
});
