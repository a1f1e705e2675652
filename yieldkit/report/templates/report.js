// yieldkit report: sortable and filterable tables, a filterable gallery with a larger view.
// Progressive enhancement: without this script the report is complete, only static.
(function () {
  "use strict";

  // Sort key of a cell: the number in data-v when present, else its text.
  function cellKey(td, numeric) {
    if (!td) return numeric ? NaN : "";
    if (numeric) return td.hasAttribute("data-v") ? parseFloat(td.getAttribute("data-v")) : NaN;
    return td.textContent.trim().toLowerCase();
  }

  // Sort the rows of a table by column `col`; missing numbers go last in both directions.
  function sortTable(table, col, descending) {
    var th = table.tHead.rows[0].cells[col];
    var numeric = th.classList.contains("num");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var sign = descending ? -1 : 1;
    rows.sort(function (a, b) {
      var x = cellKey(a.cells[col], numeric), y = cellKey(b.cells[col], numeric);
      if (numeric) {
        if (isNaN(x) || isNaN(y)) return (isNaN(x) ? 1 : 0) - (isNaN(y) ? 1 : 0);
        return sign * (x - y);
      }
      return sign * x.localeCompare(y, undefined, { numeric: true });
    });
    rows.forEach(function (r) { body.appendChild(r); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }

  // Show the rows whose text contains every word of the query (case-insensitive).
  function filterTable(table, query) {
    var words = query.toLowerCase().split(/\s+/).filter(Boolean);
    var shown = 0;
    Array.prototype.forEach.call(table.tBodies[0].rows, function (r) {
      var text = r.textContent.toLowerCase();
      var ok = words.every(function (w) { return text.indexOf(w) >= 0; });
      r.hidden = !ok;
      if (ok) shown += 1;
    });
    return shown;
  }

  function enhanceTable(table) {
    if (!table.tHead || !table.tBodies.length) return;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, i) {
      th.classList.add("sortable");
      th.tabIndex = 0;
      var go = function () { sortTable(table, i, th.getAttribute("aria-sort") === "ascending"); };
      th.addEventListener("click", go);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); go(); } });
    });
    var n = table.tBodies[0].rows.length;
    if (n < 2) return;
    var input = document.createElement("input");
    input.type = "search";
    input.className = "yk-filter";
    input.placeholder = "Filter " + n + " rows";
    input.setAttribute("aria-label", "filter the rows of " + (table.id || "this table"));
    var count = document.createElement("span");
    count.className = "yk-count";
    input.addEventListener("input", function () {
      var shown = filterTable(table, input.value);
      count.textContent = input.value ? shown + " of " + n + " rows" : "";
    });
    var tools = document.createElement("div");
    tools.className = "yk-tools";
    tools.appendChild(input);
    tools.appendChild(count);
    var wrap = table.parentNode;
    wrap.parentNode.insertBefore(tools, wrap);
  }

  // Gallery: filter by lot, pattern and highest yield [%].
  function filterGallery(form) {
    var lot = form.elements.lot ? form.elements.lot.value : "";
    var pattern = form.elements.pattern ? form.elements.pattern.value : "";
    var ymax = form.elements.ymax ? parseFloat(form.elements.ymax.value) : NaN;
    var figures = document.querySelectorAll(".gallery figure[data-lot]");
    var shown = 0;
    Array.prototype.forEach.call(figures, function (f) {
      var y = parseFloat(f.getAttribute("data-yield"));
      var ok = (!lot || f.getAttribute("data-lot") === lot) && (!pattern || f.getAttribute("data-pattern") === pattern) &&
        (isNaN(ymax) || isNaN(y) || y <= ymax + 1e-9);
      f.hidden = !ok;
      if (ok) shown += 1;
    });
    form.querySelector(".yk-count").textContent = shown + " of " + figures.length + " maps";
    return shown;
  }

  // A larger view of a gallery map in a dialog; a click or Escape closes it.
  function viewer() {
    var d = document.getElementById("viewer");
    if (d) return d;
    d = document.createElement("dialog");
    d.id = "viewer";
    d.appendChild(document.createElement("img"));
    d.appendChild(document.createElement("p"));
    d.addEventListener("click", function () { d.close(); });
    document.body.appendChild(d);
    return d;
  }

  function openViewer(figure) {
    var d = viewer(), img = figure.querySelector("img"), cap = figure.querySelector("figcaption");
    d.querySelector("img").src = img.src;
    d.querySelector("img").alt = img.alt;
    d.querySelector("p").textContent = cap ? cap.textContent : img.alt;
    d.showModal();
  }

  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.data"), enhanceTable);
    var form = document.getElementById("gallery-filter");
    if (form) {
      form.hidden = false;
      form.addEventListener("input", function () { filterGallery(form); });
      form.addEventListener("submit", function (e) { e.preventDefault(); });
      filterGallery(form);
    }
    Array.prototype.forEach.call(document.querySelectorAll(".gallery figure"), function (f) {
      f.querySelector("img").addEventListener("click", function () { openViewer(f); });
    });
    window.yieldkitReport = { sortTable: sortTable, filterTable: filterTable, filterGallery: filterGallery };
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
