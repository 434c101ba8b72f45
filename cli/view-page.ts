// The `kiln view` page: one self-contained HTML file (no network, no server). The view data
// (cli/view-data.ts) goes in gzipped and base64-encoded (the page inflates it with the
// browser's DecompressionStream), the layout library (@dagrejs/dagre's browser build) and the
// page script (cli/view-client.ts) go in as inline scripts.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { KilnError } from "../compiler/util/errors.ts";
import { viewClientScript, viewStyle } from "./view-client.ts";
import type { ViewData } from "./view-data.ts";

/** dagre's minified browser build (it defines the global `dagre`). */
function dagreBrowserBuild(): string {
  const require = createRequire(import.meta.url);
  let file: string;
  try {
    file = path.join(path.dirname(require.resolve("@dagrejs/dagre/package.json")), "dist", "dagre.min.js");
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new KilnError({
      code: "unsupported",
      message: `kiln view needs the @dagrejs/dagre package (a dependency of kiln): ${e instanceof Error ? e.message.split("\n")[0] : String(e)}`,
    });
  }
}

/** Text safe inside a <script> element (no closing tag can appear). */
const scriptSafe = (text: string): string => text.replace(/<\/(script)/gi, "<\\/$1").replace(/<!--/g, "<\\!--");

const escapeHtml = (text: string): string => text.replace(/[&<>"]/g, (c) => `&#${c.charCodeAt(0)};`);

/** The page for `data`; see the module comment. */
export function renderViewPage(data: ViewData): string {
  const packed = gzipSync(Buffer.from(JSON.stringify(data), "utf8"), { level: 9 }).toString("base64");
  return [
    "<!doctype html>",
    '<html lang="en"><head><meta charset="utf-8">',
    '<meta name="viewport" content="width=device-width, initial-scale=1">',
    `<title>kiln view: ${escapeHtml(data.title)}</title>`,
    `<style>${viewStyle}</style>`,
    "</head><body>",
    '<header><b id="title"></b> <label>stage <select id="stage"></select></label>',
    '<input id="search" type="search" placeholder="search value, op, parameter, kernel, file:line" size="36">',
    '<nav><button data-tab="graph" class="on">graph</button><button data-tab="kernels">kernels</button><button data-tab="stages">stages</button></nav>',
    '<span id="status">loading…</span></header>',
    '<main><section id="graph-tab" class="tab"><svg id="graph" xmlns="http://www.w3.org/2000/svg"></svg>',
    '<div id="legend"></div></section>',
    '<section id="kernels-tab" class="tab" hidden></section>',
    '<section id="stages-tab" class="tab" hidden></section>',
    '<aside id="panel"></aside></main>',
    `<script id="kiln-data" type="application/octet-stream">${packed}</script>`,
    `<script>${scriptSafe(dagreBrowserBuild())}</script>`,
    `<script>${scriptSafe(viewClientScript)}</script>`,
    "</body></html>",
    "",
  ].join("\n");
}
