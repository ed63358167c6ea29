// magpie dashboards: tooltips for chart elements (data-tip), sortable tables, the range
// control, and the light/dark switch. Our own code, no libraries.
(function () {
  "use strict";
  var tip = document.getElementById("tip");
  function show(el, x, y) {
    if (!tip) return;
    tip.textContent = el.getAttribute("data-tip");
    tip.hidden = false;
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var left = Math.min(x + 14, window.innerWidth - w - 8);
    var top = y - h - 12 < 4 ? y + 16 : y - h - 12;
    tip.style.left = Math.max(4, left) + "px";
    tip.style.top = top + "px";
  }
  function tipTarget(e) { return e.target.closest ? e.target.closest("[data-tip]") : null; }
  document.addEventListener("mousemove", function (e) {
    var el = tipTarget(e);
    if (el) show(el, e.clientX, e.clientY); else if (tip) tip.hidden = true;
  });
  document.addEventListener("focusin", function (e) {
    var el = tipTarget(e);
    if (el) { var r = el.getBoundingClientRect(); show(el, r.left + r.width / 2, r.top); }
  });
  document.addEventListener("focusout", function () { if (tip) tip.hidden = true; });
  document.addEventListener("mouseleave", function () { if (tip) tip.hidden = true; });

  // Sortable tables: click a header; numbers sort by data-v.
  document.addEventListener("click", function (e) {
    var th = e.target.closest && e.target.closest("table.sortable th");
    if (!th) return;
    var table = th.closest("table"), body = table.tBodies[0];
    var index = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute("data-sort") === "num";
    var ascending = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentNode.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    function key(row) {
      var cell = row.cells[index];
      if (!cell) return "";
      var v = cell.getAttribute("data-v");
      return numeric ? parseFloat(v !== null ? v : cell.textContent.replace(/[^0-9.-]/g, "")) || 0 : cell.textContent.trim().toLowerCase();
    }
    rows.sort(function (a, b) {
      var x = key(a), y = key(b);
      return (x < y ? -1 : x > y ? 1 : 0) * (ascending ? 1 : -1);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });

  // Range control: custom dates appear for "Custom…"; a preset applies at once.
  var preset = document.getElementById("range-preset");
  if (preset) {
    preset.addEventListener("change", function () {
      var custom = preset.form.querySelector(".custom");
      if (preset.value === "custom") { custom.hidden = false; return; }
      custom.hidden = true;
      custom.querySelectorAll("input").forEach(function (i) { i.disabled = true; });
      preset.form.submit();
    });
    preset.form.addEventListener("submit", function () {
      if (preset.value !== "custom") preset.form.querySelectorAll(".custom input").forEach(function (i) { i.disabled = true; });
    });
  }

  // Listener switcher: choosing a listener shows their pages at once.
  var who = document.getElementById("listener-switch");
  if (who) who.addEventListener("change", function () { who.form.submit(); });

  // Theme: follows the system until chosen, then remembered.
  var button = document.getElementById("theme");
  if (button) button.addEventListener("click", function () {
    var root = document.documentElement;
    var dark = root.dataset.theme ? root.dataset.theme === "dark" : window.matchMedia("(prefers-color-scheme: dark)").matches;
    root.dataset.theme = dark ? "light" : "dark";
    try { localStorage.setItem("magpie-theme", root.dataset.theme); } catch (err) { /* private mode */ }
  });
})();
