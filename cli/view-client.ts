// The script and style of the `kiln view` page (cli/view-page.ts inlines them). Plain browser
// JavaScript kept as text, so the page needs no build step and no server: it inflates the view
// data, lays out one module at a time with dagre (a module's layout is computed when it is
// first shown expanded, and cached), and draws SVG. Written without template literals, since
// it lives inside one.

export const viewStyle = `
*{box-sizing:border-box}
body{margin:0;font:13px system-ui,sans-serif;color:#222;height:100vh;display:flex;flex-direction:column}
header{display:flex;gap:12px;align-items:center;padding:6px 10px;border-bottom:1px solid #ccc;background:#f7f7f9;flex-wrap:wrap}
header nav button{border:1px solid #bbb;background:#fff;padding:3px 10px;cursor:pointer}
header nav button.on{background:#335;color:#fff}
#status{color:#666;margin-left:auto}
main{flex:1;display:flex;min-height:0}
.tab{flex:1;min-width:0;overflow:auto;position:relative}
#graph-tab{overflow:hidden}
#graph{width:100%;height:100%;cursor:grab;background:#fff}
#legend{position:absolute;left:8px;bottom:6px;background:rgba(255,255,255,.9);font-size:11px;color:#555;padding:2px 6px}
#panel{width:44%;max-width:760px;min-width:320px;border-left:1px solid #ccc;overflow:auto;padding:8px 12px;background:#fcfcfd}
#panel h2{font-size:15px;margin:4px 0 8px}
#panel h3{font-size:13px;margin:12px 0 4px}
pre{background:#f3f3f6;padding:6px 8px;overflow:auto;font:12px ui-monospace,monospace;margin:4px 0;max-height:60vh}
pre .hl{background:#ffe58a;display:inline-block;width:100%}
a,.link{color:#1a4fb5;cursor:pointer;text-decoration:none}
a:hover,.link:hover{text-decoration:underline}
table{border-collapse:collapse;font-size:12px}
td,th{border-bottom:1px solid #e3e3e8;padding:2px 8px;text-align:left;white-space:nowrap}
th{position:sticky;top:0;background:#f7f7f9;cursor:pointer}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pick:hover{background:#eef3ff;cursor:pointer}
.swatch{display:inline-block;width:10px;height:10px;border:1px solid #888;margin-right:4px;vertical-align:middle}
svg text{font:11px ui-monospace,monospace;pointer-events:none}
svg .node rect{stroke:#666;stroke-width:1;rx:4}
svg .node.changed rect{stroke:#e8590c;stroke-width:3}
svg .node.sel rect,svg .module.sel>rect.box{stroke:#1a4fb5;stroke-width:3}
svg .node,svg .module{cursor:pointer}
svg .module>rect.box{fill:#f2f3fb;stroke:#8a8fb8;stroke-width:1.2;rx:6}
svg .module.open>rect.box{fill:rgba(240,242,252,.35);stroke-dasharray:4 3}
svg .module.changed>rect.box{stroke:#e8590c;stroke-width:2.5}
svg .edge{fill:none;stroke:#9aa;stroke-width:1}
svg .edge.thick{stroke-width:2.2}
.muted{color:#777}
.kv td:first-child{color:#666}
`;

export const viewClientScript = String.raw`
(async function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var status = $("status");
  var t0 = performance.now();
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return "&#" + c.charCodeAt(0) + ";"; }); }
  function fmt(n) {
    if (n === undefined || n === null) return "";
    var a = Math.abs(n);
    if (a >= 1e9) return (n / 1e9).toFixed(2) + " G";
    if (a >= 1e6) return (n / 1e6).toFixed(2) + " M";
    if (a >= 1e3) return (n / 1e3).toFixed(1) + " k";
    return String(Math.round(n * 100) / 100);
  }
  async function inflate() {
    var b64 = $("kiln-data").textContent.trim();
    var bin = atob(b64);
    var bytes = new Uint8Array(bin.length);
    for (var i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
    return JSON.parse(await new Response(stream).text());
  }
  var data = await inflate();
  var loadMs = performance.now() - t0;
  $("title").textContent = data.title + " · " + data.target;
  document.title = "kiln view: " + data.title + " (" + data.target + ")";
  var finalStage = data.stages.length - 1;
  var state = { stage: finalStage, open: new Set(), selected: null, tab: "graph" };
  var cache = new Map();
  var color = function (k) { return "hsl(" + Math.round((k * 137.508) % 360) + ",70%,78%)"; };

  // --- profile: ms per step of each kernel (the sum of its dispatches) ---
  var kernelMs = null;
  if (data.profile) {
    var byName = new Map(data.profile.kernels.map(function (r) { return [r.name, r]; }));
    kernelMs = data.kernels.map(function (k) {
      var ms = 0;
      k.rendered.forEach(function (r) { var hit = byName.get(r.name); if (hit) ms += hit.totalMs; });
      return ms / Math.max(1, data.profile.steps);
    });
  }
  var totalKernelMs = kernelMs ? kernelMs.reduce(function (a, b) { return a + b; }, 0) : 0;

  function stage() { return data.stages[state.stage]; }
  function modKey(m) { return JSON.stringify(stage().modules[m].path); }
  function isOpen(m) { return m === 0 || state.open.has(modKey(m)); }
  function modLabel(m) {
    var p = stage().modules[m].path;
    return p.length ? p[p.length - 1] : data.title;
  }
  function modPath(m) { return stage().modules[m].path.join(".") || "(root)"; }
  // Kernels inside a module's subtree, and (with a profile) its share of their time by node count.
  function moduleKernels(m) {
    var st = stage();
    var counts = new Map();
    (function walk(i) {
      var mod = st.modules[i];
      mod.nodes.forEach(function (n) { var k = st.nodes[n].kernel; if (k !== undefined) counts.set(k, (counts.get(k) || 0) + 1); });
      mod.children.forEach(walk);
    })(m);
    return counts;
  }
  function moduleMs(m) {
    if (!kernelMs || state.stage !== finalStage) return null;
    var ms = 0;
    moduleKernels(m).forEach(function (count, k) { ms += kernelMs[k] * count / data.kernels[k].nodes.length; });
    return ms;
  }

  // --- layout: one module at a time, cached until something inside it opens or closes ---
  function nodeLabel(n) {
    var name = n.name.length > 18 ? n.name.slice(0, 17) + "…" : n.name;
    return n.op === "input" ? name : n.op + " " + name;
  }
  function itemSize(item) {
    if (item >= 0) {
      var n = stage().nodes[item];
      return { w: Math.max(60, 7 * nodeLabel(n).length + 14), h: kernelMs && n.kernel !== undefined && state.stage === finalStage ? 36 : 24 };
    }
    var m = -item - 1;
    if (isOpen(m)) { var l = layout(m); return { w: l.w + 16, h: l.h + 30 }; }
    return { w: Math.max(120, 7.5 * modLabel(m).length + 30), h: 46 };
  }
  function layout(m) {
    var key = state.stage + ":" + m;
    var hit = cache.get(key);
    if (hit) return hit;
    var mod = stage().modules[m];
    var g = new dagre.graphlib.Graph();
    g.setGraph({ rankdir: "TB", nodesep: 14, ranksep: 26, edgesep: 6, marginx: 6, marginy: 6 });
    g.setDefaultEdgeLabel(function () { return {}; });
    var items = mod.nodes.concat(mod.children.map(function (c) { return -c - 1; }));
    items.forEach(function (it) { var s = itemSize(it); g.setNode(String(it), { width: s.w, height: s.h }); });
    mod.edges.forEach(function (e) { g.setEdge(String(e[0]), String(e[1])); });
    dagre.layout(g);
    var out = { w: Math.max(g.graph().width || 0, 80), h: Math.max(g.graph().height || 0, 30), items: [], edges: [] };
    items.forEach(function (it) { var p = g.node(String(it)); out.items.push({ item: it, x: p.x - p.width / 2, y: p.y - p.height / 2, w: p.width, h: p.height }); });
    mod.edges.forEach(function (e) { var p = g.edge(String(e[0]), String(e[1])); if (p) out.edges.push({ points: p.points, count: e[2] }); });
    cache.set(key, out);
    return out;
  }
  function invalidate(m) { for (var a = m; a >= 0; a = stage().modules[a].parent) cache.delete(state.stage + ":" + a); }

  // --- drawing ---
  var positions = new Map();
  function draw() {
    var started = performance.now();
    positions.clear();
    var st = stage();
    var parts = [];
    var root = layout(0);
    (function drawModule(m, ox, oy) {
      var l = layout(m);
      l.edges.forEach(function (e) {
        var d = e.points.map(function (p, i) { return (i ? "L" : "M") + (p.x + ox).toFixed(1) + " " + (p.y + oy).toFixed(1); }).join("");
        parts.push('<path class="edge' + (e.count > 3 ? " thick" : "") + '" d="' + d + '" marker-end="url(#arrow)"/>');
      });
      l.items.forEach(function (it) {
        var x = it.x + ox, y = it.y + oy;
        if (it.item >= 0) {
          var n = st.nodes[it.item];
          positions.set("n" + it.item, { x: x + it.w / 2, y: y + it.h / 2 });
          var fill = n.kernel !== undefined ? color(n.kernel) : (n.op === "input" ? "#fff7d6" : "#eee");
          var cls = "node" + (n.changed ? " changed" : "") + (state.selected === "n" + it.item ? " sel" : "");
          parts.push('<g class="' + cls + '" data-node="' + it.item + '"' + (n.kernel !== undefined ? ' data-kernel="' + n.kernel + '"' : "") + '><rect x="' + x + '" y="' + y + '" width="' + it.w + '" height="' + it.h + '" fill="' + fill + '"/>' +
            '<text x="' + (x + 7) + '" y="' + (y + 16) + '">' + esc(nodeLabel(n)) + "</text>" +
            (kernelMs && n.kernel !== undefined && state.stage === finalStage ? '<text x="' + (x + 7) + '" y="' + (y + 30) + '" fill="#933">' + kernelMs[n.kernel].toFixed(3) + " ms</text>" : "") + "</g>");
        } else {
          var c = -it.item - 1;
          var mod = st.modules[c];
          var open = isOpen(c);
          positions.set("m" + c, { x: x + it.w / 2, y: y + (open ? 14 : it.h / 2), x0: x, y0: y, w: it.w, h: it.h });
          var cls2 = "module" + (open ? " open" : "") + (mod.changed ? " changed" : "") + (state.selected === "m" + c ? " sel" : "");
          parts.push('<g class="' + cls2 + '" data-module="' + c + '" data-path="' + esc(mod.path.join(".")) + '"><rect class="box" x="' + x + '" y="' + y + '" width="' + it.w + '" height="' + it.h + '"/>');
          parts.push('<text x="' + (x + 8) + '" y="' + (y + 16) + '" font-weight="bold">' + (open ? "▾ " : "▸ ") + esc(modLabel(c)) + "</text>");
          if (!open) {
            var ms = moduleMs(c);
            parts.push('<text x="' + (x + 8) + '" y="' + (y + 31) + '" fill="#555">' + mod.size + " nodes" + (mod.changed ? ", " + mod.changed + " changed" : "") + (ms !== null ? ", " + ms.toFixed(3) + " ms" : "") + "</text>");
            var ks = state.stage === finalStage ? Array.from(moduleKernels(c).keys()).sort(function (a, b) { return a - b; }) : [];
            ks.slice(0, 24).forEach(function (k, i) { parts.push('<rect x="' + (x + 8 + i * 7) + '" y="' + (y + 36) + '" width="6" height="6" fill="' + color(k) + '" stroke="none"/>'); });
          }
          if (open) drawModule(c, x + 8, y + 22);
          parts.push("</g>");
        }
      });
    })(0, 10, 10);
    var svg = $("graph");
    svg.innerHTML = '<defs><marker id="arrow" viewBox="0 0 8 8" refX="8" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path d="M0 0L8 4L0 8z" fill="#9aa"/></marker></defs><g id="viewport">' + parts.join("") + "</g>";
    world = { w: root.w + 20, h: root.h + 20 };
    applyView();
    var ms = performance.now() - started;
    view.lastDrawMs = ms;
    legend();
    return ms;
  }
  function legend() {
    var st = stage();
    var visible = document.querySelectorAll("#graph .node").length + document.querySelectorAll("#graph .module").length;
    $("legend").innerHTML = esc(st.name) + ": " + st.nodes.length + " nodes, " + visible + " shown" +
      (state.stage === finalStage ? " · colours: fused kernels (" + data.kernels.length + ")" : "") +
      (state.stage > 0 ? ' · <span style="color:#e8590c">orange</span>: changed by ' + esc(st.name) : "") + " · click a module to open it";
  }

  // --- pan and zoom ---
  var world = { w: 100, h: 100 };
  var cam = { x: 0, y: 0, s: 1 };
  var fitted = false;
  function applyView() {
    var svg = $("graph");
    if (!fitted) { var r = svg.getBoundingClientRect(); cam.s = Math.min(1, (r.width || 800) / world.w, (r.height || 600) / world.h); cam.x = 0; cam.y = 0; fitted = true; }
    var vp = $("viewport");
    if (vp) vp.setAttribute("transform", "translate(" + cam.x + "," + cam.y + ") scale(" + cam.s + ")");
  }
  // Zooms so the module box fills the view (never past 120 %), its top left in view.
  function fitTo(key) {
    var p = positions.get(key);
    if (!p || p.w === undefined) return centerOn(key);
    var r = $("graph").getBoundingClientRect();
    var s = Math.max(0.45, Math.min(1.2, (r.width - 40) / p.w, (r.height - 40) / p.h));
    cam.s = s;
    cam.x = p.w * s < r.width ? (r.width - p.w * s) / 2 - p.x0 * s : 20 - p.x0 * s;
    cam.y = 20 - p.y0 * s;
    applyView();
  }
  function centerOn(key) {
    var p = positions.get(key);
    if (!p) return;
    var r = $("graph").getBoundingClientRect();
    cam.s = Math.max(cam.s, 0.8);
    cam.x = r.width / 2 - p.x * cam.s;
    cam.y = r.height / 2 - p.y * cam.s;
    applyView();
  }
  (function () {
    var svg = $("graph");
    var drag = null;
    svg.addEventListener("mousedown", function (e) { drag = { x: e.clientX, y: e.clientY, cx: cam.x, cy: cam.y, moved: false }; });
    window.addEventListener("mousemove", function (e) {
      if (!drag) return;
      if (Math.abs(e.clientX - drag.x) + Math.abs(e.clientY - drag.y) > 3) drag.moved = true;
      cam.x = drag.cx + e.clientX - drag.x; cam.y = drag.cy + e.clientY - drag.y; applyView();
    });
    window.addEventListener("mouseup", function () { setTimeout(function () { drag = null; }, 0); });
    svg.addEventListener("wheel", function (e) {
      e.preventDefault();
      var r = svg.getBoundingClientRect();
      var f = Math.exp(-e.deltaY * 0.0015);
      var px = e.clientX - r.left, py = e.clientY - r.top;
      cam.x = px - (px - cam.x) * f; cam.y = py - (py - cam.y) * f; cam.s *= f; applyView();
    }, { passive: false });
    svg.addEventListener("click", function (e) {
      if (drag && drag.moved) return;
      var t = e.target.closest("[data-node],[data-module]");
      if (!t) return;
      if (t.hasAttribute("data-node")) { selectNode(Number(t.getAttribute("data-node"))); return; }
      var m = Number(t.getAttribute("data-module"));
      toggle(m);
      if (isOpen(m)) fitTo("m" + m);
      showModule(m);
    });
  })();

  function toggle(m, forceOpen) {
    var k = modKey(m);
    if (m === 0) return;
    if (state.open.has(k) && !forceOpen) state.open.delete(k); else state.open.add(k);
    invalidate(m);
    draw();
  }
  function reveal(nodeId) {
    var st = stage();
    var home = -1;
    st.modules.forEach(function (mod, i) { if (mod.nodes.indexOf(nodeId) >= 0) home = i; });
    for (var a = home; a > 0; a = st.modules[a].parent) { if (!isOpen(a)) { state.open.add(modKey(a)); invalidate(a); } }
  }

  // --- the side panel ---
  function locLink(loc) {
    return '<a class="loc" data-loc="' + esc(loc) + '">' + esc(loc) + "</a>";
  }
  function linkify(text) {
    return esc(text).replace(/loc\(&#34;([^&]+)&#34;:(\d+):(\d+)\)/g, function (all, f, l, c) { return 'loc(<a class="loc" data-loc="' + f + ":" + l + ":" + c + '">&#34;' + f + "&#34;:" + l + ":" + c + "</a>)"; });
  }
  function panel(html) { $("panel").innerHTML = html; $("panel").scrollTop = 0; }
  function selectNode(id, center) {
    state.selected = "n" + id;
    if (center) { reveal(id); draw(); centerOn("n" + id); } else draw();
    var st = stage();
    var n = st.nodes[id];
    var users = [];
    st.nodes.forEach(function (u) { if (u.operands.indexOf(id) >= 0) users.push(u.id); });
    var nodeLink = function (i) { return '<a class="node-link" data-node="' + i + '">' + esc(st.nodes[i].name) + "</a>"; };
    var h = "<h2>" + esc(n.name) + ' <span class="muted">' + esc(n.op) + "</span></h2><pre>" + esc(n.text) + '</pre><table class="kv">';
    h += "<tr><td>type</td><td>" + esc(n.type) + "</td></tr>";
    h += "<tr><td>module</td><td>" + (n.scope ? '<a class="scope-link" data-scope="' + esc(n.scope) + '">' + esc(n.scope) + "</a>" : '<span class="muted">(none)</span>') + "</td></tr>";
    h += "<tr><td>source</td><td>" + (n.loc ? locLink(n.loc) : '<span class="muted">(none)</span>') + "</td></tr>";
    if (n.outputs) h += "<tr><td>returned as</td><td>" + n.outputs.map(esc).join(", ") + "</td></tr>";
    if (n.kernel !== undefined) h += '<tr><td>kernel</td><td><span class="swatch" style="background:' + color(n.kernel) + '"></span><a class="kernel-link" data-kernel="' + n.kernel + '">' + esc(data.kernels[n.kernel].name) + "</a></td></tr>";
    else if (state.stage === finalStage) h += '<tr><td>kernel</td><td class="muted">' + (n.op === "input" ? "a graph input" : "none: a view of its operand or folded into its users' indexing") + "</td></tr>";
    else h += '<tr><td>kernel</td><td class="muted">kernels exist for the last stage (' + esc(data.stages[finalStage].name) + ")</td></tr>";
    if (n.changed) h += '<tr><td>changed</td><td style="color:#e8590c">new or rewritten by ' + esc(st.name) + "</td></tr>";
    h += "</table>";
    if (n.operands.length) h += "<h3>operands</h3>" + n.operands.map(nodeLink).join(", ");
    if (users.length) h += "<h3>used by</h3>" + users.slice(0, 60).map(nodeLink).join(", ") + (users.length > 60 ? " …" : "");
    h += '<div id="source-view"></div>';
    panel(h);
  }
  function showKernel(k) {
    var K = data.kernels[k];
    state.selected = null;
    var intensity = K.flops / Math.max(1, K.bytesRead + K.bytesWritten);
    var h = '<h2><span class="swatch" style="background:' + color(k) + '"></span>' + esc(K.name) + "</h2>";
    h += '<table class="kv"><tr><td>elements</td><td>' + fmt(K.elements) + "</td></tr><tr><td>FLOPs</td><td>" + fmt(K.flops) + "</td></tr>" +
      "<tr><td>bytes read</td><td>" + fmt(K.bytesRead) + "B</td></tr><tr><td>bytes written</td><td>" + fmt(K.bytesWritten) + "B</td></tr>" +
      "<tr><td>arithmetic intensity</td><td>" + intensity.toFixed(2) + " FLOP/B</td></tr>";
    K.rendered.forEach(function (r) { if (r.launch) h += "<tr><td>launch " + esc(r.name === K.name ? "" : r.name.slice(K.name.length + 1)) + "</td><td>" + esc(r.launch) + "</td></tr>"; });
    if (kernelMs) h += "<tr><td>time</td><td>" + kernelMs[k].toFixed(3) + " ms/step (" + (100 * kernelMs[k] / Math.max(1e-12, totalKernelMs)).toFixed(1) + " % of kernel time), " + (K.flops / Math.max(1e-9, kernelMs[k]) / 1e6).toFixed(2) + " GFLOP/s, " + ((K.bytesRead + K.bytesWritten) / Math.max(1e-9, kernelMs[k]) / 1e6).toFixed(2) + " GB/s</td></tr>";
    h += "<tr><td>groups</td><td>" + K.groups.map(function (g) { return esc(g.label) + " [" + g.shape.join(",") + "]"; }).join("; ") + "</td></tr>";
    h += "<tr><td>source lines</td><td>" + (K.locs.length ? K.locs.map(locLink).join(" ") : '<span class="muted">(none)</span>') + "</td></tr>";
    h += "<tr><td>modules</td><td>" + (K.scopes.length ? K.scopes.map(function (s) { return '<a class="scope-link" data-scope="' + esc(s) + '">' + esc(s) + "</a>"; }).join(" ") : '<span class="muted">(none)</span>') + "</td></tr></table>";
    var fst = data.stages[finalStage];
    h += "<h3>nodes (" + K.nodes.length + ")</h3>" + K.nodes.slice(0, 80).map(function (i) { return '<a class="node-link" data-stage="' + finalStage + '" data-node="' + i + '">' + esc(fst.nodes[i].name) + " " + esc(fst.nodes[i].op) + "</a>"; }).join(", ") + (K.nodes.length > 80 ? " …" : "");
    h += '<div id="source-view"></div>';
    h += "<h3>kernel IR</h3><pre>" + linkify(K.kir) + "</pre>";
    K.rendered.forEach(function (r) {
      var src = data.sources[r.source];
      h += "<h3>" + esc(data.sourceKind) + ": " + esc(r.name) + "</h3>";
      if (data.sourceKind === "wasm") h += '<p class="muted">a wasm binary module of ' + Math.floor(src.length * 3 / 4) + " bytes (its text form could not be made here; the kernel IR above is what it computes)</p>";
      else h += '<pre class="kernel-source">' + linkify(src) + "</pre>";
    });
    panel(h);
  }
  function showModule(m) {
    var st = stage();
    var mod = st.modules[m];
    state.selected = "m" + m;
    var ks = Array.from(moduleKernels(m).entries()).sort(function (a, b) { return a[0] - b[0]; });
    var h = "<h2>module " + esc(modPath(m)) + "</h2><p>" + mod.size + " nodes (" + mod.nodes.length + " directly, " + mod.children.length + " submodules)" + (mod.changed ? ", " + mod.changed + " changed by " + esc(st.name) : "") + "</p>";
    h += '<p><span class="link" data-toggle="' + m + '">' + (isOpen(m) ? "close" : "open") + "</span></p>";
    if (ks.length) h += "<h3>kernels</h3>" + ks.map(function (e) { return '<div><span class="swatch" style="background:' + color(e[0]) + '"></span><a class="kernel-link" data-kernel="' + e[0] + '">' + esc(data.kernels[e[0]].name) + "</a> <span class=\"muted\">" + e[1] + " nodes here" + (kernelMs ? ", " + kernelMs[e[0]].toFixed(3) + " ms" : "") + "</span></div>"; }).join("");
    panel(h);
  }
  function showLoc(loc) {
    var m = /^(.*):(\d+):(\d+)$/.exec(loc) || /^(.*):(\d+)$/.exec(loc);
    var target = $("source-view") || (function () { panel('<div id="source-view"></div>'); return $("source-view"); })();
    if (!m) return;
    var file = m[1], line = Number(m[2]);
    var text = data.files[file];
    if (text === undefined) { target.innerHTML = '<p class="muted">' + esc(file) + " is not embedded in this page</p>"; return; }
    var lines = text.split("\n");
    var from = Math.max(0, line - 8), to = Math.min(lines.length, line + 7);
    var body = "";
    for (var i = from; i < to; i++) {
      var s = String(i + 1).padStart(4, " ") + "  " + esc(lines[i]);
      body += i + 1 === line ? '<span class="hl">' + s + "</span>\n" : s + "\n";
    }
    var users = stage().nodes.filter(function (n) { return n.loc && n.loc.indexOf(file + ":" + line + ":") === 0; }).length;
    target.innerHTML = "<h3>" + esc(file) + ":" + line + ' <span class="muted">(' + users + " nodes of this stage)</span></h3><pre>" + body + "</pre>";
  }
  $("panel").addEventListener("click", function (e) {
    var a = e.target.closest("[data-node],[data-kernel],[data-loc],[data-scope],[data-toggle],[data-stage-file]");
    if (!a) return;
    if (a.hasAttribute("data-kernel")) showKernel(Number(a.getAttribute("data-kernel")));
    else if (a.hasAttribute("data-node")) {
      if (a.hasAttribute("data-stage")) setStage(Number(a.getAttribute("data-stage")));
      switchTab("graph");
      selectNode(Number(a.getAttribute("data-node")), true);
    } else if (a.hasAttribute("data-loc")) showLoc(a.getAttribute("data-loc"));
    else if (a.hasAttribute("data-scope")) revealScope(a.getAttribute("data-scope"));
    else if (a.hasAttribute("data-toggle")) { var m = Number(a.getAttribute("data-toggle")); toggle(m); showModule(m); }
  });
  function revealScope(scope) {
    var st = stage();
    var want = JSON.stringify(scope.split("."));
    var m = st.modules.findIndex(function (mod) { return JSON.stringify(mod.path) === want; });
    if (m < 0) return;
    for (var a = st.modules[m].parent; a > 0; a = st.modules[a].parent) state.open.add(modKey(a));
    cache.clear();
    switchTab("graph");
    state.selected = "m" + m;
    draw();
    centerOn("m" + m);
    showModule(m);
  }

  // --- search ---
  function search(q) {
    q = q.trim().toLowerCase();
    if (!q) return;
    var st = stage();
    var hits = [];
    st.nodes.forEach(function (n) {
      var hay = [n.name, n.op, n.loc || "", n.scope || "", (n.outputs || []).join(" "), n.kernel !== undefined ? data.kernels[n.kernel].name : ""].join(" ").toLowerCase();
      if (hay.indexOf(q) >= 0) hits.push(n.id);
    });
    var kh = data.kernels.map(function (k, i) { return i; }).filter(function (i) { return data.kernels[i].name.toLowerCase().indexOf(q) >= 0; });
    var h = "<h2>search: " + esc(q) + "</h2><p>" + hits.length + " nodes, " + kh.length + " kernels</p>";
    h += kh.slice(0, 40).map(function (i) { return '<div><span class="swatch" style="background:' + color(i) + '"></span><a class="kernel-link" data-kernel="' + i + '">' + esc(data.kernels[i].name) + "</a></div>"; }).join("");
    h += hits.slice(0, 200).map(function (i) { var n = st.nodes[i]; return '<div><a class="node-link" data-node="' + i + '">' + esc(n.name) + "</a> " + esc(n.op) + ' <span class="muted">' + esc(n.type) + " " + esc(n.scope || "") + " " + esc(n.loc || "") + "</span></div>"; }).join("");
    if (hits.length > 200) h += "<p>…</p>";
    panel(h);
  }
  var searchTimer = 0;
  $("search").addEventListener("input", function () { clearTimeout(searchTimer); searchTimer = setTimeout(function () { search($("search").value); }, 200); });
  $("search").addEventListener("keydown", function (e) { if (e.key === "Enter") search($("search").value); });

  // --- stages, tabs, the kernels table ---
  var sel = $("stage");
  data.stages.forEach(function (s, i) {
    var o = document.createElement("option");
    o.value = String(i);
    o.textContent = s.file + (i === finalStage ? " (fused)" : "") + (i > 0 ? " · " + s.nodes.filter(function (n) { return n.changed; }).length + " changed" : "");
    sel.appendChild(o);
  });
  sel.value = String(state.stage);
  sel.addEventListener("change", function () { setStage(Number(sel.value)); });
  function setStage(i) {
    if (i === state.stage) return;
    state.stage = i; sel.value = String(i); state.selected = null; fitted = false; draw();
    var st = stage();
    var removed = Object.keys(st.removed);
    panel("<h2>" + esc(st.file) + "</h2><p>" + st.nodes.length + " nodes" + (i > 0 ? ", " + st.nodes.filter(function (n) { return n.changed; }).length + " new or rewritten (orange), " + removed.reduce(function (a, k) { return a + st.removed[k]; }, 0) + " removed or rewritten: " + removed.map(function (k) { return esc(k) + " ×" + st.removed[k]; }).join(", ") : "") + "</p>");
  }
  function switchTab(tab) {
    state.tab = tab;
    document.querySelectorAll("header nav button").forEach(function (b) { b.classList.toggle("on", b.getAttribute("data-tab") === tab); });
    ["graph", "kernels", "stages"].forEach(function (t) { $(t + "-tab").hidden = t !== tab; });
    if (tab === "kernels") kernelTable();
    if (tab === "stages") stageList();
  }
  document.querySelectorAll("header nav button").forEach(function (b) { b.addEventListener("click", function () { switchTab(b.getAttribute("data-tab")); }); });
  function kernelTable() {
    var order = data.kernels.map(function (k, i) { return i; });
    if (kernelMs) order.sort(function (a, b) { return kernelMs[b] - kernelMs[a]; });
    var h = "<table><tr><th>#</th><th>kernel</th>" + (kernelMs ? '<th class="num">ms/step</th><th class="num">%</th><th class="num">GFLOP/s</th><th class="num">GB/s</th>' : "") +
      '<th class="num">elements</th><th class="num">FLOPs</th><th class="num">read</th><th class="num">written</th><th class="num">FLOP/B</th><th>launch</th><th>source</th></tr>';
    order.forEach(function (i) {
      var K = data.kernels[i];
      var bytes = K.bytesRead + K.bytesWritten;
      h += '<tr class="pick" data-kernel="' + i + '"><td>' + i + '</td><td><span class="swatch" style="background:' + color(i) + '"></span>' + esc(K.name.length > 48 ? K.name.slice(0, 47) + "…" : K.name) + "</td>" +
        (kernelMs ? '<td class="num">' + kernelMs[i].toFixed(3) + '</td><td class="num">' + (100 * kernelMs[i] / Math.max(1e-12, totalKernelMs)).toFixed(1) + '</td><td class="num">' + (K.flops / Math.max(1e-9, kernelMs[i]) / 1e6).toFixed(2) + '</td><td class="num">' + (bytes / Math.max(1e-9, kernelMs[i]) / 1e6).toFixed(2) + "</td>" : "") +
        '<td class="num">' + fmt(K.elements) + '</td><td class="num">' + fmt(K.flops) + '</td><td class="num">' + fmt(K.bytesRead) + 'B</td><td class="num">' + fmt(K.bytesWritten) + 'B</td><td class="num">' + (K.flops / Math.max(1, bytes)).toFixed(2) + "</td><td>" + esc(K.rendered.map(function (r) { return r.launch || ""; }).filter(Boolean).join("; ")) + "</td><td>" + esc(K.locs.slice(0, 2).join(" ")) + "</td></tr>";
    });
    h += "</table>";
    if (data.profile) h = "<p>profiled over " + data.profile.steps + " steps" + (data.profile.method ? " (" + esc(data.profile.method) + ")" : "") + ": " + totalKernelMs.toFixed(3) + " ms/step in kernels" + (data.profile.hostMs !== undefined ? ", " + (data.profile.hostMs / data.profile.steps).toFixed(3) + " ms/step on the host" : "") + "</p>" + h;
    else h = '<p class="muted">no profile in this page (kiln view --profile N measures one)</p>' + h;
    $("kernels-tab").innerHTML = h;
  }
  $("kernels-tab").addEventListener("click", function (e) { var r = e.target.closest("[data-kernel]"); if (r) showKernel(Number(r.getAttribute("data-kernel"))); });
  function stageList() {
    var h = "<table><tr><th>stage</th><th>what</th></tr>";
    data.stages.forEach(function (s, i) { h += '<tr class="pick" data-graph-stage="' + i + '"><td>' + esc(s.file) + "</td><td>graph, " + s.nodes.length + " nodes" + (i > 0 ? ", " + s.nodes.filter(function (n) { return n.changed; }).length + " changed" : "") + "</td></tr>"; });
    data.dumps.forEach(function (d, i) { h += '<tr class="pick" data-dump="' + i + '"><td>' + esc(d.name) + "</td><td>" + d.text.split("\n").length + " lines</td></tr>"; });
    $("stages-tab").innerHTML = h + '</table><div id="dump-text"></div>';
  }
  $("stages-tab").addEventListener("click", function (e) {
    var r = e.target.closest("[data-dump],[data-graph-stage]");
    if (!r) return;
    if (r.hasAttribute("data-graph-stage")) { setStage(Number(r.getAttribute("data-graph-stage"))); switchTab("graph"); return; }
    var d = data.dumps[Number(r.getAttribute("data-dump"))];
    $("dump-text").innerHTML = "<h3>" + esc(d.name) + "</h3><pre>" + linkify(d.text) + "</pre>";
  });
  $("stages-tab").addEventListener("click", function (e) { var a = e.target.closest("[data-loc]"); if (a) { panel('<div id="source-view"></div>'); showLoc(a.getAttribute("data-loc")); } });

  var view = { ready: false, loadMs: loadMs, layoutMs: 0, lastDrawMs: 0 };
  window.kilnView = view;
  var layoutMs = draw();
  view.layoutMs = layoutMs;
  var s = data.stats;
  status.textContent = data.stages[finalStage].nodes.length + " nodes · " + data.kernels.length + " kernels" + (s.kernels !== data.kernels.length ? " (" + s.kernels + " dispatches)" : "") + " · " + fmt(s.bytesRead + s.bytesWritten) + "B moved · peak " + fmt(s.peakBytes) + "B" + (kernelMs ? " · " + totalKernelMs.toFixed(2) + " ms/step in kernels" : "") + " · loaded in " + Math.round(loadMs + layoutMs) + " ms";
  panel("<h2>" + esc(data.title) + '</h2><p>Click a module box to open it, a node for its IR line, source line and kernel; search by value name, op, parameter or kernel. The stage menu shows the graph after each pass (orange: what that pass changed).</p>');
  view.ready = true;
  document.body.setAttribute("data-ready", "1");
})().catch(function (e) {
  document.getElementById("status").textContent = "error: " + (e && e.message);
  console.error(e);
});
`;
