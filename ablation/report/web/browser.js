// The results browser's one script: sortable tables, and the architecture graph's zoom, pan and
// layer search. No network, no libraries: the pages work from file:// and offline.
"use strict";

// Tables: a click on a header sorts by that column (numbers as numbers), a second click reverses.
function cellValue(row, index) {
  const text = row.cells[index] ? row.cells[index].textContent.trim() : "";
  const number = parseFloat(text.replace(/,/g, ""));
  return /^[-+]?[\d,.]+(e[-+]?\d+)?\s*%?$/i.test(text) && !isNaN(number) ? number : text.toLowerCase();
}

function makeSortable(table) {
  const head = table.tHead ? table.tHead.rows[0] : null;
  const body = table.tBodies[0];
  if (!head || !body) return;
  Array.from(head.cells).forEach((th, index) => {
    th.dataset.sort = "";
    th.addEventListener("click", () => {
      const ascending = th.getAttribute("aria-sort") !== "ascending";
      Array.from(head.cells).forEach((other) => other.removeAttribute("aria-sort"));
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      const rows = Array.from(body.rows);
      rows.sort((a, b) => {
        const x = cellValue(a, index), y = cellValue(b, index);
        const order = typeof x === typeof y ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
        return ascending ? order : -order;
      });
      rows.forEach((row) => body.appendChild(row));
    });
  });
}

// The graph: the SVG is scaled and moved with a CSS transform; the frame's data-scale holds the scale.
function makeViewer(frame) {
  const svg = frame.querySelector("svg");
  if (!svg) return;
  const box = svg.viewBox.baseVal;
  svg.setAttribute("width", box.width);
  svg.setAttribute("height", box.height);
  const view = { scale: 1, x: 0, y: 0 };
  const apply = () => {
    svg.style.transform = `translate(${view.x}px, ${view.y}px) scale(${view.scale})`;
    frame.dataset.scale = view.scale.toFixed(4);
  };
  const zoomAt = (factor, cx, cy) => {
    const scale = Math.min(8, Math.max(0.02, view.scale * factor));
    view.x = cx - (cx - view.x) * (scale / view.scale);
    view.y = cy - (cy - view.y) * (scale / view.scale);
    view.scale = scale;
    apply();
  };
  const fit = () => {
    view.scale = Math.min(1, frame.clientWidth / box.width);
    view.x = (frame.clientWidth - box.width * view.scale) / 2;
    view.y = 0;
    apply();
  };
  const centre = () => [frame.clientWidth / 2, frame.clientHeight / 2];
  const tools = frame.parentElement;
  tools.querySelector("[data-zoom=in]").addEventListener("click", () => zoomAt(1.25, ...centre()));
  tools.querySelector("[data-zoom=out]").addEventListener("click", () => zoomAt(0.8, ...centre()));
  tools.querySelector("[data-zoom=fit]").addEventListener("click", fit);
  frame.addEventListener("wheel", (event) => {
    event.preventDefault();
    const rect = frame.getBoundingClientRect();
    zoomAt(event.deltaY < 0 ? 1.15 : 1 / 1.15, event.clientX - rect.left, event.clientY - rect.top);
  }, { passive: false });
  let drag = null;
  frame.addEventListener("pointerdown", (event) => {
    drag = { x: event.clientX - view.x, y: event.clientY - view.y };
    frame.classList.add("dragging");
    frame.setPointerCapture(event.pointerId);
  });
  frame.addEventListener("pointermove", (event) => {
    if (!drag) return;
    view.x = event.clientX - drag.x;
    view.y = event.clientY - drag.y;
    apply();
  });
  frame.addEventListener("pointerup", () => { drag = null; frame.classList.remove("dragging"); });

  // Search: the nodes whose layer name (their id) contains the text; Enter goes to the next one.
  const input = tools.querySelector("input[type=search]");
  const status = tools.querySelector("output");
  const nodes = Array.from(svg.querySelectorAll("g.node"));
  let hits = [], current = -1;
  const show = (node) => {
    nodes.forEach((n) => n.classList.remove("current"));
    node.classList.add("current");
    const nodeBox = node.getBBox();
    const matrix = node.getCTM();  // from the node's units to the SVG's, graphviz's own transform included
    const px = matrix.a * (nodeBox.x + nodeBox.width / 2) + matrix.e;
    const py = matrix.d * (nodeBox.y + nodeBox.height / 2) + matrix.f;
    view.scale = Math.max(view.scale, 0.6);
    view.x = frame.clientWidth / 2 - px * view.scale;
    view.y = frame.clientHeight / 2 - py * view.scale;
    apply();
  };
  const search = () => {
    const text = input.value.trim().toLowerCase();
    nodes.forEach((n) => n.classList.remove("hit", "current"));
    hits = text ? nodes.filter((n) => n.id.toLowerCase().includes(text)) : [];
    hits.forEach((n) => n.classList.add("hit"));
    current = hits.length ? 0 : -1;
    status.textContent = text ? `${hits.length} layer${hits.length === 1 ? "" : "s"}` : "";
    if (hits.length) show(hits[0]);
  };
  input.addEventListener("input", search);
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && hits.length) {
      current = (current + 1) % hits.length;
      status.textContent = `${current + 1} of ${hits.length}`;
      show(hits[current]);
    }
  });
  fit();
}

document.querySelectorAll("table").forEach(makeSortable);
document.querySelectorAll(".graph").forEach(makeViewer);
