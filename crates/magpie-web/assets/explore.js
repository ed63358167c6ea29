// magpie's SQL explorer: run with Ctrl/Cmd+Enter (the selection, or all of it), complete
// table and column names from the schema browser, inputs for {{variables}}, the result as a
// sortable table, a chart drawn by the server, Cancel, downloads, save and add to a
// dashboard. Our own code, no libraries; it talks to /api/* with the session's CSRF token.
(function () {
  "use strict";
  var root = document.getElementById("explore");
  if (!root) return;
  var csrf = root.getAttribute("data-csrf");
  var editing = JSON.parse(root.getAttribute("data-question") || "null");
  var sql = document.getElementById("sql");
  var status = document.getElementById("status");
  var errorBox = document.getElementById("error");
  var runButton = document.getElementById("run");
  var cancelButton = document.getElementById("cancel");
  var resultBox = document.getElementById("result");
  var chartBox = document.getElementById("chart");
  var kind = document.getElementById("chart-kind");
  var axes = { x: document.getElementById("chart-x"), y: document.getElementById("chart-y"), series: document.getElementById("chart-series") };
  var last = null; // the last result: {columns, rows}
  var running = null; // the running query's id
  var declared = (editing && editing.variables) || {};

  function post(path, body) {
    return fetch(path, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.json().catch(function () { return { error: "HTTP " + r.status }; }).then(function (j) {
        if (!r.ok && !j.error) j.error = "HTTP " + r.status;
        return j;
      });
    });
  }
  function showError(text) {
    errorBox.textContent = text || "";
    errorBox.hidden = !text;
  }

  // ---- Variables: an input per {{name}} in the SQL (a date range's .from/.to share one).
  var varsBox = document.getElementById("vars");
  var values = {};
  function variableNames(text) {
    var names = [], re = /\{\{\s*([A-Za-z0-9_]+)(?:\.(?:from|to))?\s*\}\}/g, m;
    while ((m = re.exec(text))) if (names.indexOf(m[1]) < 0) names.push(m[1]);
    return names;
  }
  function renderVars() {
    var names = variableNames(sql.value);
    varsBox.textContent = "";
    names.forEach(function (name) {
      var decl = declared[name] || { type: "text" };
      declared[name] = decl;
      var label = document.createElement("label");
      label.textContent = name + " ";
      var type = document.createElement("select");
      ["text", "number", "date", "date_range", "list"].forEach(function (t) {
        var o = document.createElement("option");
        o.value = o.textContent = t;
        if ((decl.type || "text") === t) o.selected = true;
        type.appendChild(o);
      });
      type.addEventListener("change", function () { decl.type = type.value; });
      var input = document.createElement("input");
      input.type = "text";
      input.value = values[name] !== undefined ? values[name] : (decl["default"] || "");
      input.placeholder = "value";
      input.setAttribute("data-var", name);
      input.addEventListener("input", function () { values[name] = input.value; });
      label.appendChild(type);
      label.appendChild(input);
      varsBox.appendChild(label);
    });
  }
  function currentParams() {
    var out = {};
    varsBox.querySelectorAll("input[data-var]").forEach(function (i) { out[i.getAttribute("data-var")] = i.value; });
    return out;
  }
  function currentDecls() {
    var out = {}, names = variableNames(sql.value);
    names.forEach(function (n) {
      var d = declared[n] || {};
      out[n] = { type: d.type || "text" };
      if (d["default"]) out[n]["default"] = d["default"];
      if (d.options) out[n].options = d.options;
      if (d.label) out[n].label = d.label;
    });
    return out;
  }
  sql.addEventListener("input", renderVars);

  // ---- Running.
  function queryText() {
    var a = sql.selectionStart, b = sql.selectionEnd;
    var selected = a !== b ? sql.value.slice(a, b) : "";
    return selected.trim() ? selected : sql.value;
  }
  function run() {
    if (running) return;
    showError("");
    running = "q" + Date.now() + Math.random().toString(16).slice(2, 8);
    runButton.disabled = true;
    cancelButton.disabled = false;
    status.textContent = "running…";
    var started = Date.now();
    post("/api/sql", { sql: queryText(), params: currentParams(), variables: currentDecls(), query_id: running })
      .then(function (r) {
        if (r.error) { showError(r.error); status.textContent = ""; return; }
        last = r;
        status.textContent = r.row_count + " row" + (r.row_count === 1 ? "" : "s") +
          (r.truncated ? " (first " + r.rows.length + " shown)" : "") + " in " + r.elapsed_ms + " ms";
        renderTable(r);
        fillAxes(r.columns);
        drawChart();
      })
      .catch(function (e) { showError(String(e)); status.textContent = ""; })
      .then(function () {
        running = null;
        runButton.disabled = false;
        cancelButton.disabled = true;
        if (!status.textContent) status.textContent = "after " + (Date.now() - started) + " ms";
      });
  }
  runButton.addEventListener("click", run);
  cancelButton.addEventListener("click", function () {
    if (running) post("/api/sql/cancel", { query_id: running });
  });

  function renderTable(r) {
    var table = document.createElement("table");
    table.className = "sortable result";
    var head = table.createTHead().insertRow();
    r.columns.forEach(function (c, i) {
      var th = document.createElement("th");
      th.textContent = c.name;
      th.title = c.type;
      var numeric = r.rows.some(function (row) { return typeof row[i] === "number"; });
      if (numeric) th.setAttribute("data-sort", "num");
      head.appendChild(th);
    });
    var body = table.createTBody();
    r.rows.forEach(function (row) {
      var tr = body.insertRow();
      row.forEach(function (v) {
        var td = tr.insertCell();
        td.textContent = v === null ? "" : (typeof v === "object" ? JSON.stringify(v) : String(v));
        if (typeof v === "number") td.setAttribute("data-v", String(v));
      });
    });
    resultBox.textContent = "";
    resultBox.appendChild(table);
  }

  // ---- Chart: the server draws it from the rows we have.
  // The columns the axes were chosen for: a result with other columns starts from the
  // defaults again (null: keep what the page set, e.g. a saved question's chart).
  var axisColumns = null;
  function fillAxes(columns) {
    var names = columns.map(function (c) { return c.name; }).join("\n");
    var same = axisColumns === null || axisColumns === names;
    axisColumns = names;
    ["x", "y", "series"].forEach(function (axis) {
      var select = axes[axis], keep = same ? select.value : "";
      select.textContent = "";
      if (axis === "series") {
        var none = document.createElement("option");
        none.value = ""; none.textContent = "—";
        select.appendChild(none);
      }
      columns.forEach(function (c) {
        var o = document.createElement("option");
        o.value = o.textContent = c.name;
        select.appendChild(o);
      });
      if (keep && columns.some(function (c) { return c.name === keep; })) select.value = keep;
    });
    if (!axes.y.value || axes.y.value === axes.x.value) {
      var numeric = columns.filter(function (c, i) { return i > 0 && /INT|DOUBLE|FLOAT|DECIMAL/.test(c.type); })[0];
      if (numeric) axes.y.value = numeric.name;
    }
  }
  function chartSpec() {
    var spec = { kind: kind.value };
    if (axes.x.value) spec.x = axes.x.value;
    if (axes.y.value) spec.y = axes.y.value;
    if (axes.series.value) spec.series = axes.series.value;
    return spec;
  }
  var drawn = 0; // the latest chart asked for: an older answer arriving later is dropped
  function drawChart() {
    var ticket = ++drawn;
    if (!last || kind.value === "table") { chartBox.textContent = ""; return; }
    post("/api/chart", { chart: chartSpec(), columns: last.columns, rows: last.rows }).then(function (r) {
      if (ticket !== drawn) return;
      if (r.error) { chartBox.textContent = r.error; return; }
      chartBox.innerHTML = r.svg || ""; // drawn and escaped by magpie
    });
  }
  [kind, axes.x, axes.y, axes.series].forEach(function (s) { s.addEventListener("change", drawChart); });

  // ---- Downloads: the whole result, streamed by the server.
  document.getElementById("download").addEventListener("submit", function () {
    this.elements.sql.value = queryText();
    this.elements.params.value = JSON.stringify(currentParams());
    this.elements.variables.value = JSON.stringify(currentDecls());
  });

  // ---- Save, and add to a dashboard.
  var savedSlug = editing ? editing.slug : null;
  var title = document.getElementById("save-title");
  var slug = document.getElementById("save-slug");
  var description = document.getElementById("save-description");
  if (editing) {
    title.value = editing.title || "";
    slug.value = editing.slug || "";
    description.value = editing.description || "";
    if (editing.chart) {
      kind.value = editing.chart.kind || "table";
      ["x", "y", "series"].forEach(function (a) {
        if (editing.chart[a]) {
          var o = document.createElement("option");
          o.value = o.textContent = editing.chart[a];
          axes[a].appendChild(o);
          axes[a].value = editing.chart[a];
        }
      });
    }
  }
  document.getElementById("save-question").addEventListener("click", function () {
    var saved = document.getElementById("saved");
    if (!title.value.trim()) { saved.textContent = "A question needs a title."; return; }
    post("/api/questions", {
      slug: slug.value.trim() || null, title: title.value.trim(), description: description.value.trim() || null,
      sql: sql.value, variables: currentDecls(), chart: kind.value === "table" ? null : chartSpec()
    }).then(function (r) {
      if (r.error) { saved.textContent = r.error; return; }
      savedSlug = r.slug;
      slug.value = r.slug;
      saved.textContent = "Saved as ";
      var a = document.createElement("a");
      a.href = r.url; a.textContent = r.url; a.id = "saved-link";
      saved.appendChild(a);
    });
  });
  var dashboard = document.getElementById("dashboard");
  var newDashboard = document.getElementById("new-dashboard");
  function toggleNew() { document.getElementById("new-dashboard-label").hidden = dashboard.value !== ""; }
  dashboard.addEventListener("change", toggleNew);
  toggleNew();
  document.getElementById("add-card").addEventListener("click", function () {
    var added = document.getElementById("added");
    var target = dashboard.value || slugOf(newDashboard.value);
    if (!target) { added.textContent = "Choose a dashboard or name a new one."; return; }
    var body = { title: title.value.trim() || null, chart: kind.value === "table" ? null : chartSpec(),
      dashboard_title: dashboard.value ? null : newDashboard.value.trim() };
    if (savedSlug) body.question = savedSlug; else body.sql = sql.value;
    post("/api/dashboards/" + encodeURIComponent(target) + "/cards", body).then(function (r) {
      if (r.error) { added.textContent = r.error; return; }
      added.textContent = "Added to ";
      var a = document.createElement("a");
      a.href = r.url; a.textContent = r.url; a.id = "added-link";
      added.appendChild(a);
    });
  });
  function slugOf(text) {
    return text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 64);
  }

  // ---- Completion of table and column names from the schema browser.
  var tables = {}, all = [];
  document.querySelectorAll("#schema details.table").forEach(function (d) {
    var t = d.getAttribute("data-table"), cols = [];
    d.querySelectorAll("li[data-column]").forEach(function (li) { cols.push(li.getAttribute("data-column")); });
    tables[t] = cols;
    if (all.indexOf(t) < 0) all.push(t);
    cols.forEach(function (c) { if (all.indexOf(c) < 0) all.push(c); });
  });
  var list = document.getElementById("complete");
  var choices = [], chosen = 0;
  function currentWord() {
    var end = sql.selectionStart, text = sql.value.slice(0, end);
    var m = /([A-Za-z_][A-Za-z0-9_]*\.)?([A-Za-z_][A-Za-z0-9_]*)$/.exec(text);
    return m ? { qualifier: m[1] ? m[1].slice(0, -1) : null, word: m[2], end: end } : null;
  }
  function complete() {
    var w = currentWord();
    if (!w || sql.selectionStart !== sql.selectionEnd) return close();
    var pool = w.qualifier && tables[w.qualifier] ? tables[w.qualifier] : all;
    var lower = w.word.toLowerCase();
    choices = pool.filter(function (n) { return n.toLowerCase().indexOf(lower) === 0 && n !== w.word; }).slice(0, 8);
    if (!choices.length) return close();
    chosen = 0;
    list.textContent = "";
    choices.forEach(function (c, i) {
      var li = document.createElement("li");
      li.textContent = c;
      li.setAttribute("role", "option");
      if (i === chosen) li.setAttribute("aria-selected", "true");
      li.addEventListener("mousedown", function (e) { e.preventDefault(); chosen = i; accept(); });
      list.appendChild(li);
    });
    list.hidden = false;
  }
  function close() { list.hidden = true; choices = []; }
  function accept() {
    var w = currentWord();
    if (!w || !choices.length) return close();
    var choice = choices[chosen];
    var start = w.end - w.word.length;
    sql.value = sql.value.slice(0, start) + choice + sql.value.slice(w.end);
    sql.selectionStart = sql.selectionEnd = start + choice.length;
    close();
    renderVars();
  }
  function highlight() {
    Array.prototype.forEach.call(list.children, function (li, i) {
      if (i === chosen) li.setAttribute("aria-selected", "true"); else li.removeAttribute("aria-selected");
    });
  }
  sql.addEventListener("input", complete);
  sql.addEventListener("blur", function () { setTimeout(close, 100); });
  sql.addEventListener("keydown", function (e) {
    if ((e.ctrlKey || e.metaKey) && e.key === "Enter") { e.preventDefault(); close(); run(); return; }
    if (list.hidden) return;
    if (e.key === "ArrowDown") { e.preventDefault(); chosen = (chosen + 1) % choices.length; highlight(); }
    else if (e.key === "ArrowUp") { e.preventDefault(); chosen = (chosen + choices.length - 1) % choices.length; highlight(); }
    else if (e.key === "Tab" || e.key === "Enter") { e.preventDefault(); accept(); }
    else if (e.key === "Escape") { close(); }
  });

  // ---- The schema browser's filter; a click on a name puts it into the editor.
  document.getElementById("schema-filter").addEventListener("input", function () {
    var q = this.value.toLowerCase();
    document.querySelectorAll("#schema details.table").forEach(function (d) {
      var hit = !q || d.textContent.toLowerCase().indexOf(q) >= 0;
      d.hidden = !hit;
      if (q && hit) d.open = true;
    });
  });
  document.getElementById("schema").addEventListener("dblclick", function (e) {
    var code = e.target.closest && e.target.closest("code");
    if (!code) return;
    var name = code.textContent.replace(/^marts\./, "");
    var at = sql.selectionStart;
    sql.value = sql.value.slice(0, at) + name + sql.value.slice(sql.selectionEnd);
    sql.focus();
    sql.selectionStart = sql.selectionEnd = at + name.length;
  });

  renderVars();
})();
