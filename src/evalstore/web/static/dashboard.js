// evalstore dashboard: draws the charts from the JSON blocks of the page, sorts and
// filters tables. No inline script: the Content-Security-Policy allows only this file
// and Plotly's.
(function () {
  "use strict";

  function isLocalLink(url) {
    return typeof url === "string" && url.length > 0 && !/^[a-z][a-z0-9+.-]*:/i.test(url) && url.indexOf("//") !== 0;
  }

  function drawCharts() {
    if (typeof Plotly === "undefined") { return; }
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var block = document.getElementById(el.getAttribute("data-chart"));
      if (!block) { return; }
      var spec = JSON.parse(block.textContent);
      Plotly.newPlot(el, spec.data, spec.layout, {
        displaylogo: false, responsive: true,
        modeBarButtonsToRemove: ["select2d", "lasso2d", "toImage"]
      }).then(function () { el.setAttribute("data-drawn", "true"); });
      el.on("plotly_click", function (event) {
        var point = event.points && event.points[0];
        var url = point && point.customdata;
        if (isLocalLink(url)) { window.location.href = url; }
      });
    });
  }

  function cellValue(row, index, kind) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    var raw = cell.hasAttribute("data-sort") ? cell.getAttribute("data-sort") : cell.textContent.trim();
    if (kind === "number") {
      var n = parseFloat(raw);
      return isNaN(n) ? -Infinity : n;
    }
    return raw.toLowerCase();
  }

  function makeSortable(table) {
    var headers = table.tHead ? table.tHead.rows[0].cells : [];
    Array.prototype.forEach.call(headers, function (th, index) {
      if (!th.hasAttribute("data-sort-kind")) { return; }
      function sort() {
        var kind = th.getAttribute("data-sort-kind");
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        Array.prototype.forEach.call(headers, function (other) { other.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = cellValue(a, index, kind), y = cellValue(b, index, kind);
          var order = x < y ? -1 : x > y ? 1 : 0;
          return ascending ? order : -order;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
    });
  }

  function applyFilters(tableId) {
    var table = document.getElementById(tableId);
    if (!table) { return; }
    var text = document.querySelector('input.table-filter[data-filter-table="' + tableId + '"]');
    var status = document.querySelector('select.status-filter[data-filter-table="' + tableId + '"]');
    var query = text ? text.value.trim().toLowerCase() : "";
    var wanted = status ? status.value : "";
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      var ok = (!query || row.textContent.toLowerCase().indexOf(query) !== -1) &&
        (!wanted || row.getAttribute("data-status") === wanted);
      row.hidden = !ok;
    });
  }

  function compareButton() {
    var form = document.getElementById("compare-form");
    var button = document.getElementById("compare-button");
    if (!form || !button) { return; }
    function update() {
      var ticked = form.querySelectorAll('input[name="run"]:checked').length;
      button.disabled = ticked !== 2;
      button.textContent = ticked === 2 ? "Compare the two ticked runs" : "Tick two runs to compare (" + ticked + "/2)";
    }
    form.addEventListener("change", update);
    update();
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("table.sortable").forEach(makeSortable);
    document.querySelectorAll("[data-filter-table]").forEach(function (el) {
      var id = el.getAttribute("data-filter-table");
      el.addEventListener("input", function () { applyFilters(id); });
      el.addEventListener("change", function () { applyFilters(id); });
    });
    compareButton();
    drawCharts();
  });
})();
