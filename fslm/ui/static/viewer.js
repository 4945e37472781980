// The fslm run viewer. Every piece of recorded text reaches the page as a DOM text node or an attribute
// value (never as HTML), so model output cannot inject markup.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const RUN_LIMIT = 200;
const NODE = { width: 150, height: 46, endWidth: 64, gap: 64, labelGap: 150, rowGap: 30, pad: 24, loopDrop: 46 };

const view = document.getElementById("view");
const runList = document.getElementById("runs");
const compareButton = document.getElementById("compare");
const selected = new Set();

function el(tag, attributes = {}, ...children) {
  return build(document.createElement(tag), attributes, children);
}

function svg(tag, attributes = {}, ...children) {
  return build(document.createElementNS(SVG_NS, tag), attributes, children);
}

function build(node, attributes, children) {
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined && child !== false) node.append(child);
  }
  return node;
}

// `fslm ui` prints the page's address with the server's access token (`/?token=…`); every API call sends it.
const TOKEN = new URLSearchParams(location.search).get("token") ?? "";

async function api(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Authorization: `Bearer ${TOKEN}` } });
  } catch {
    throw new Error("cannot reach the viewer's server: is `fslm ui` still running?");
  }
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `the server answered ${response.status}`);
  return body;
}

const runLink = (id, text = id) => el("a", { href: `#/run/${encodeURIComponent(id)}`, class: "run-id" }, text);
const statusBadge = (status) => el("span", { class: `status status-${status}` }, status);
const seconds = (value) => (value === null || value === undefined ? "–" : `${value.toFixed(1)} s`);
const when = (epoch) => new Date(epoch * 1000).toLocaleString();
const errorBox = (message) => el("div", { class: "error", role: "alert" }, message);
const show = (...parts) => view.replaceChildren(...parts.filter(Boolean));
// A run's input: text as it is; a structured input (a JSON object) one `field: value` line per field.
const inputText = (input) => (typeof input === "string" ? input : Object.entries(input)
  .map(([field, value]) => `${field}: ${typeof value === "string" ? value : JSON.stringify(value)}`).join("\n"));

// ---- the list of runs ------------------------------------------------------------------------------------

async function loadRuns() {
  const query = new URLSearchParams({ limit: RUN_LIMIT });
  const pipeline = document.getElementById("filter-pipeline").value.trim();
  const status = document.getElementById("filter-status").value;
  if (pipeline) query.set("pipeline", pipeline);
  if (status) query.set("status", status);
  try {
    const { runs } = await api(`/api/runs?${query}`);
    runList.replaceChildren(...(runs.length ? runs.map(runItem) : [el("li", { class: "empty" }, "no runs match")]));
  } catch (error) {
    runList.replaceChildren(el("li", {}, errorBox(error.message)));
  }
  markCurrentRun();
}

function runItem(run) {
  const box = el("input", { type: "checkbox", "aria-label": `select run ${run.run_id} to compare` });
  box.checked = selected.has(run.run_id);
  box.addEventListener("change", () => {
    if (box.checked) selected.add(run.run_id);
    else selected.delete(run.run_id);
    compareButton.disabled = selected.size !== 2;
  });
  return el(
    "li",
    { class: "run", "data-run": run.run_id },
    box,
    el(
      "a",
      { href: `#/run/${encodeURIComponent(run.run_id)}`, class: "run-summary" },
      el("span", { class: "run-line" }, el("code", {}, run.run_id), statusBadge(run.status)),
      el("span", { class: "run-line meta" }, el("span", { title: run.pipeline }, run.pipeline_name),
        el("span", {}, `${when(run.started)} · ${seconds(run.seconds)}`)),
      el("span", { class: "preview" }, run.input),
    ),
  );
}

function markCurrentRun() {
  const current = decodeURIComponent(location.hash.match(/^#\/run\/(.+)$/)?.[1] ?? "");
  for (const item of runList.querySelectorAll("li.run")) {
    item.classList.toggle("current", item.dataset.run === current);
  }
}

// ---- one run ----------------------------------------------------------------------------------------------

async function showRun(runId) {
  const [run, graph] = await Promise.all([
    api(`/api/runs/${encodeURIComponent(runId)}`),
    api(`/api/runs/${encodeURIComponent(runId)}/graph`),
  ]);
  const ran = new Set(run.messages.map((message) => message.stage));
  show(
    el("h2", {}, "Run ", el("code", {}, run.run_id), " ", statusBadge(run.status)),
    runFacts(run),
    run.error ? errorBox(run.error) : null,
    el("section", { class: "card input" }, el("h3", {}, "Input"), el("pre", { class: "text" }, inputText(run.input))),
    el("section", { class: "card graph" }, el("h3", {}, "Pipeline"), graphView(graph, ran)),
    el("h3", {}, `Stage messages (${run.messages.length})`),
    el("ol", { class: "messages" }, run.messages.map(messageCard)),
  );
}

function runFacts(run) {
  const facts = [
    ["pipeline", el("span", { title: run.pipeline }, `${run.pipeline_name} (${run.pipeline})`)],
    ["started", when(run.started)],
    ["took", seconds(run.seconds)],
  ];
  if (run.batch_id) facts.push(["batch", el("code", {}, run.batch_id)]);
  if (run.parent_id) {
    facts.push(["replay of", el("span", {}, runLink(run.parent_id), ` from stage ${run.replay_from} · `,
      el("a", { href: `#/diff/${encodeURIComponent(run.parent_id)}/${encodeURIComponent(run.run_id)}` },
        "compare with parent"))]);
  }
  return el("dl", { class: "facts" }, facts.map(([name, value]) => [el("dt", {}, name), el("dd", {}, value)]));
}

function messageCard(message) {
  const adapter = message.adapter ? ` + ${message.adapter}` : "";
  return el(
    "li",
    { class: `card message${message.edited ? " edited" : ""}`, "data-stage": message.stage },
    el(
      "div",
      { class: "message-head" },
      el("span", { class: "stage-name" }, message.stage),
      message.edited ? el("span", { class: "badge edited-badge", title: "replaced by hand in a replay" }, "edited") : null,
      el("span", { class: "model" }, `${message.model}${adapter}`),
      el("span", { class: "numbers" },
        `${message.prompt_tokens} → ${message.completion_tokens} tokens · ${seconds(message.seconds)}`),
    ),
    el("pre", { class: "text" }, message.text),
    (message.tables || []).map(recordTable),
    el("details", { class: "prompt" }, el("summary", {}, "prompt"), el("pre", {}, message.prompt)),
  );
}

// A record a stage's kind added to its message, as the kind lays it out (fslm/spec/kind_hooks.py): a heading,
// a table of text cells with the chosen rows marked, then notes.
function recordTable(table) {
  const head = el("tr", {}, table.columns.map((column) =>
    el("th", { class: column.numeric ? "score" : null }, column.title)));
  const rows = table.rows.map((row, index) => el(
    "tr",
    { class: table.chosen.includes(index) ? "chosen" : null },
    row.map((cell, column) => el("td", { class: table.columns[column].numeric ? "score" : "text" }, cell)),
  ));
  return el("div", { class: "record" },
    table.heading ? el("p", { class: "record-head" }, table.heading) : null,
    el("table", { class: "record-table" }, el("thead", {}, head), el("tbody", {}, rows)),
    table.notes.map((note) => el("p", { class: "record-note" }, note)));
}

// ---- the pipeline graph: columns by distance from the entry, drawn left to right ----------------------------

function graphView(graph, ran) {
  if (!graph.available) return el("p", { class: "note" }, graph.note);
  return el("div", {}, graph.note ? el("p", { class: "note" }, graph.note) : null, graphSvg(graph, ran));
}

function layout(graph) {
  const columns = new Map();
  for (const node of graph.nodes) columns.set(node.layer, [...(columns.get(node.layer) ?? []), node]);
  const tallest = Math.max(...[...columns.values()].map((column) => column.length));
  const height = tallest * NODE.height + (tallest - 1) * NODE.rowGap;
  // Columns whose edges carry labels get room for them; plain edges need only a short gap.
  const layerOf = new Map(graph.nodes.map((node) => [node.name, node.layer]));
  const labelled = new Set(graph.edges.filter((edge) => edge.label).map((edge) => layerOf.get(edge.source)));
  const layers = Math.max(...columns.keys()) + 1;
  const left = [NODE.pad];
  for (let layer = 1; layer < layers; layer += 1) {
    left.push(left[layer - 1] + NODE.width + (labelled.has(layer - 1) ? NODE.labelGap : NODE.gap));
  }
  const boxes = new Map();
  for (const [layer, column] of columns) {
    const top = NODE.pad + (height - (column.length * NODE.height + (column.length - 1) * NODE.rowGap)) / 2;
    column.forEach((node, row) => {
      const width = node.name === "END" ? NODE.endWidth : NODE.width;
      const x = left[layer] + (NODE.width - width) / 2;
      boxes.set(node.name, { x, y: top + row * (NODE.height + NODE.rowGap), width, height: NODE.height });
    });
  }
  return { boxes, width: left[layers - 1] + NODE.width + NODE.pad, height };
}

function edgePath(from, to) {
  // Forward edges leave the right side for the left side; loops and same-column edges swing under the nodes.
  if (to.x > from.x + from.width) {
    const [x1, y1, x2, y2] = [from.x + from.width, from.y + from.height / 2, to.x, to.y + to.height / 2];
    const bend = (x2 - x1) / 2;
    // The label sits on the curve past its middle (t = 0.62), where edges fanning out of one node have spread.
    const labelAt = [x1 + 0.59 * (x2 - x1), y1 + 0.68 * (y2 - y1)];
    return { d: `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`, mid: labelAt };
  }
  const spread = from === to ? from.width / 4 : 0;
  const [x1, y1] = [from.x + from.width / 2 - spread, from.y + from.height];
  const [x2, y2] = [to.x + to.width / 2 + spread, to.y + to.height];
  const low = Math.max(y1, y2) + NODE.loopDrop;
  return { d: `M${x1},${y1} C${x1},${low} ${x2},${low} ${x2},${y2}`, mid: [(x1 + x2) / 2, low - NODE.loopDrop / 4] };
}

function graphSvg(graph, ran) {
  const { boxes, width, height } = layout(graph);
  const hasLoop = graph.edges.some((edge) => !(boxes.get(edge.target).x > boxes.get(edge.source).x));
  const total = height + 2 * NODE.pad + (hasLoop ? NODE.loopDrop : 0);
  const edges = graph.edges.map((edge) => {
    const { d, mid } = edgePath(boxes.get(edge.source), boxes.get(edge.target));
    return svg("g", { class: `edge${edge.conditional ? " conditional" : ""}` },
      svg("path", { d, "marker-end": "url(#arrow)" }),
      edge.label ? svg("text", { x: mid[0], y: mid[1] - 4, "text-anchor": "middle" }, edge.label) : null);
  });
  const nodes = graph.nodes.map((node) => {
    const box = boxes.get(node.name);
    const cx = box.x + box.width / 2;
    if (node.name === "END") {
      return svg("g", { class: "node end" },
        svg("rect", { x: box.x, y: box.y + 8, width: box.width, height: box.height - 16, rx: 15 }),
        svg("text", { x: cx, y: box.y + box.height / 2 + 4, "text-anchor": "middle" }, "END"));
    }
    const classes = ["node", "stage", ran.has(node.name) ? "ran" : "skipped", node.name === graph.entry ? "entry" : ""];
    return svg("g", { class: classes.join(" ").trim(), "data-stage": node.name },
      svg("title", {}, [node.name, node.model && `model ${node.model}`, node.adapter && `adapter ${node.adapter}`,
        !ran.has(node.name) && "did not run in this run"].filter(Boolean).join(" · ")),
      svg("rect", { x: box.x, y: box.y, width: box.width, height: box.height, rx: 8 }),
      svg("text", { x: cx, y: box.y + (node.model ? 20 : 28), "text-anchor": "middle", class: "name" }, node.name),
      node.model ? svg("text", { x: cx, y: box.y + 36, "text-anchor": "middle", class: "sub" }, node.model) : null);
  });
  return svg("svg", { class: "pipeline-graph", width, height: total, viewBox: `0 0 ${width} ${total}`, role: "img",
      "aria-label": "pipeline graph" },
    svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7,
      markerHeight: 7, orient: "auto-start-reverse" }, svg("path", { d: "M0,0 L10,5 L0,10 z" }))),
    edges, nodes);
}

// ---- two runs side by side ----------------------------------------------------------------------------------

async function showDiff(first, second) {
  const diff = await api(`/api/diff?${new URLSearchParams({ a: first, b: second })}`);
  const side = (run) => el("th", {}, runLink(run.run_id), " ", statusBadge(run.status),
    el("div", { class: "meta" }, `${run.pipeline_name} · ${when(run.started)}`));
  const cell = (text) => el("td", {}, text === null ? el("em", { class: "absent" }, "did not run") : el("pre", { class: "text" }, text));
  const changed = diff.stages.filter((stage) => !stage.same).length;
  show(
    el("h2", {}, "Compare runs"),
    el("p", { class: "summary" }, `${changed} of ${diff.stages.length} stage outputs differ`),
    el("table", { class: "diff" },
      el("thead", {}, el("tr", {}, el("th", {}, "stage"), side(diff.a), side(diff.b))),
      el("tbody", {},
        el("tr", { class: inputText(diff.a.input) === inputText(diff.b.input) ? "same" : "differs",
          "data-stage": "input" }, el("th", {}, "input"), cell(inputText(diff.a.input)), cell(inputText(diff.b.input))),
        diff.stages.map((stage) => el("tr", { class: stage.same ? "same" : "differs", "data-stage": stage.stage },
          el("th", {}, stage.stage), cell(stage.a), cell(stage.b))))),
  );
}

// ---- routing: #/run/ID and #/diff/A/B -------------------------------------------------------------------------

function showWelcome() {
  view.replaceChildren(el("p", { class: "hint" },
    "Pick a run on the left to read what each stage said, or tick two runs and compare them."));
}

async function route() {
  markCurrentRun();
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  view.replaceChildren(el("p", { class: "hint" }, "loading…"));
  try {
    if (parts[0] === "run" && parts.length === 2) await showRun(parts[1]);
    else if (parts[0] === "diff" && parts.length === 3) await showDiff(parts[1], parts[2]);
    else showWelcome();
  } catch (error) {
    view.replaceChildren(errorBox(error.message));
  }
  window.scrollTo(0, 0);
}

document.getElementById("filters").addEventListener("submit", (event) => {
  event.preventDefault();
  loadRuns();
});
compareButton.addEventListener("click", () => {
  const [first, second] = [...selected];
  location.hash = `#/diff/${encodeURIComponent(first)}/${encodeURIComponent(second)}`;
});
window.addEventListener("hashchange", route);
loadRuns();
route();
