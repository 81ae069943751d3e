// The setup page: draw, move, rename and reverse counting lines on the learned background; live tally;
// validation by tally. Plain JS, no build step; talks to this agent only (same origin, CSP connect-src 'self').
(function () {
  "use strict";
  const stringsBlock = document.getElementById("strings");
  if (!stringsBlock) return; // the login page
  const S = JSON.parse(stringsBlock.textContent);
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.getElementById("overlay");
  const img = document.getElementById("picture");
  const pictureState = document.getElementById("picture-state");
  const list = document.getElementById("line-list");
  const saveStatus = document.getElementById("save-status");
  const NAME = /^[a-z0-9-]{1,64}$/;
  let lines = [];
  let size = null;
  let drag = null;
  let restarting = false;
  let instance = null; // the agent's start this page last loaded its lines from

  function t(key, values) {
    let s = S[key] || key;
    for (const k in values || {}) s = s.split("{" + k + "}").join(String(values[k]));
    return s;
  }

  async function call(method, path, body) {
    const options = { method: method, headers: {}, credentials: "same-origin" };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    const response = await fetch(path, options);
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data: data };
  }

  // --- the picture and the drawing -------------------------------------------------------------------

  function round(v) { return Math.round(Math.min(Math.max(v, 0), 10000) * 10) / 10; }

  function toImage(event) {
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    const p = point.matrixTransform(svg.getScreenCTM().inverse());
    return [round(Math.min(p.x, size.width)), round(Math.min(p.y, size.height))];
  }

  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }

  function render() {
    if (!size) return;
    svg.setAttribute("viewBox", "0 0 " + size.width + " " + size.height);
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    const unit = Math.max(size.width, size.height) / 640;
    const defs = el("defs", {}, svg);
    for (const [id, colour] of [["arrow-ab", "#ffbf00"], ["arrow-in", "#3cdc50"]]) {
      const marker = el("marker", { id: id, viewBox: "0 0 10 10", refX: "8", refY: "5", markerWidth: "5",
        markerHeight: "5", orient: "auto-start-reverse" }, defs);
      el("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: colour }, marker);
    }
    lines.forEach(function (line, index) {
      const [x1, y1, x2, y2] = line.points;
      const g = el("g", { "data-index": String(index), class: "line" }, svg);
      el("line", { x1: x1, y1: y1, x2: x2, y2: y2, class: "hit", "stroke-width": String(14 * unit) }, g);
      // The A->B arrowhead three quarters along, where neither the B dot nor the `in` arrow hides it.
      const qx = x1 + (x2 - x1) * 0.75, qy = y1 + (y2 - y1) * 0.75;
      el("polyline", { points: [x1, y1, qx, qy, x2, y2].join(" "), class: "body", fill: "none",
        "stroke-width": String(3 * unit), "marker-mid": "url(#arrow-ab)" }, g);
      const length = Math.hypot(x2 - x1, y2 - y1) || 1;
      // `in` is the right-hand side of a walker from A to B; with y down its normal is (-dy, dx).
      const nx = -(y2 - y1) / length, ny = (x2 - x1) / length;
      const mx = (x1 + x2) / 2, my = (y1 + y2) / 2, reach = 30 * unit;
      el("line", { x1: mx, y1: my, x2: mx + nx * reach, y2: my + ny * reach, class: "in-arrow",
        "stroke-width": String(3 * unit), "marker-end": "url(#arrow-in)" }, g);
      const inLabel = el("text", { x: mx + nx * reach * 1.5, y: my + ny * reach * 1.5, class: "in-label",
        "font-size": String(14 * unit) }, g);
      inLabel.textContent = t("in");
      const label = el("text", { x: x1 + 6 * unit, y: y1 - 6 * unit, class: "name", "font-size": String(14 * unit) }, g);
      label.textContent = line.name + " A";
      const labelB = el("text", { x: x2 + 6 * unit, y: y2 - 6 * unit, class: "name", "font-size": String(14 * unit) }, g);
      labelB.textContent = "B";
      el("circle", { cx: x1, cy: y1, r: String(7 * unit), class: "handle", "data-end": "a" }, g);
      el("circle", { cx: x2, cy: y2, r: String(7 * unit), class: "handle", "data-end": "b" }, g);
    });
  }

  function nextName() {
    for (let i = 1; ; i++) {
      const name = "line-" + i;
      if (!lines.some(function (l) { return l.name === name; })) return name;
    }
  }

  svg.addEventListener("pointerdown", function (event) {
    if (!size || event.button > 0) return;
    const p = toImage(event);
    const group = event.target.closest ? event.target.closest("g.line") : null;
    if (group) {
      const index = Number(group.getAttribute("data-index"));
      const end = event.target.getAttribute("data-end");
      drag = { index: index, end: end, start: p, original: lines[index].points.slice(), isNew: false };
    } else {
      lines.push({ name: nextName(), points: [p[0], p[1], p[0], p[1]] });
      drag = { index: lines.length - 1, end: "b", start: p, original: null, isNew: true };
    }
    svg.setPointerCapture(event.pointerId);
    event.preventDefault();
  });

  svg.addEventListener("pointermove", function (event) {
    if (!drag) return;
    const p = toImage(event);
    const line = lines[drag.index];
    if (drag.end === "a") { line.points[0] = p[0]; line.points[1] = p[1]; }
    else if (drag.end === "b") { line.points[2] = p[0]; line.points[3] = p[1]; }
    else {
      const dx = p[0] - drag.start[0], dy = p[1] - drag.start[1], o = drag.original;
      line.points = [round(o[0] + dx), round(o[1] + dy), round(o[2] + dx), round(o[3] + dy)];
    }
    render();
    syncInputs();
  });

  function endDrag() {
    if (!drag) return;
    const line = lines[drag.index];
    const [x1, y1, x2, y2] = line.points;
    if (drag.isNew && Math.hypot(x2 - x1, y2 - y1) < 5) lines.splice(drag.index, 1);
    drag = null;
    render();
    renderList();
  }
  svg.addEventListener("pointerup", endDrag);
  svg.addEventListener("pointercancel", endDrag);

  // --- the list: names, exact coordinates, reverse and delete (the keyboard way to do everything) ---

  function syncInputs() {
    lines.forEach(function (line, index) {
      for (let k = 0; k < 4; k++) {
        const input = document.getElementById("line-" + index + "-p" + k);
        if (input && document.activeElement !== input) input.value = String(line.points[k]);
      }
    });
  }

  function field(parent, id, labelText, input) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    label.htmlFor = id;
    label.textContent = labelText;
    input.id = id;
    wrap.appendChild(label);
    wrap.appendChild(input);
    parent.appendChild(wrap);
  }

  function renderList() {
    list.textContent = "";
    lines.forEach(function (line, index) {
      const set = document.createElement("fieldset");
      set.className = "line-item";
      const legend = document.createElement("legend");
      legend.textContent = t("line_legend", { name: line.name });
      set.appendChild(legend);
      const name = document.createElement("input");
      name.type = "text";
      name.value = line.name;
      name.maxLength = 64;
      name.pattern = "[a-z0-9-]{1,64}";
      name.autocomplete = "off";
      name.addEventListener("input", function () {
        line.name = name.value.trim().toLowerCase();
        legend.textContent = t("line_legend", { name: line.name });
        render();
      });
      field(set, "line-" + index + "-name", t("name"), name);
      ["A x", "A y", "B x", "B y"].forEach(function (labelText, k) {
        const input = document.createElement("input");
        input.type = "number";
        input.min = "0";
        input.max = String(k % 2 === 0 ? size.width : size.height);
        input.step = "1";
        input.value = String(line.points[k]);
        input.addEventListener("input", function () {
          const value = Number(input.value);
          if (Number.isFinite(value)) { line.points[k] = round(value); render(); }
        });
        field(set, "line-" + index + "-p" + k, labelText, input);
      });
      const actions = document.createElement("div");
      actions.className = "actions";
      const reverse = document.createElement("button");
      reverse.type = "button";
      reverse.className = "reverse";
      reverse.textContent = t("reverse");
      reverse.addEventListener("click", function () {
        const [x1, y1, x2, y2] = line.points;
        line.points = [x2, y2, x1, y1];
        render();
        syncInputs();
      });
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = t("delete");
      remove.addEventListener("click", function () {
        lines.splice(index, 1);
        render();
        renderList();
      });
      actions.appendChild(reverse);
      actions.appendChild(remove);
      set.appendChild(actions);
      list.appendChild(set);
    });
  }

  document.getElementById("add-line").addEventListener("click", function () {
    if (!size) return;
    const w = size.width, h = size.height;
    lines.push({ name: nextName(), points: [round(w * 0.3), round(h * 0.5), round(w * 0.7), round(h * 0.5)] });
    render();
    renderList();
    const input = document.getElementById("line-" + (lines.length - 1) + "-name");
    if (input) input.focus();
  });

  document.getElementById("save-lines").addEventListener("click", async function () {
    const bad = lines.filter(function (l) { return !NAME.test(l.name); }).map(function (l) { return l.name || "?"; });
    if (bad.length) { showProblems(["name: " + bad.join(", ") + " (a-z, 0-9, -)"]); return; }
    let result;
    try { result = await call("POST", "/setup/api/lines", { lines: lines }); }
    catch (e) { showProblems([t("problem")]); return; }
    if (result.ok) {
      saveStatus.className = "message ok";
      saveStatus.textContent = t("saved");
      restarting = true;
    } else {
      showProblems((result.data && result.data.problems) || [t("problem")]);
    }
  });

  function showProblems(problems) {
    saveStatus.className = "message error";
    saveStatus.textContent = "";
    const p = document.createElement("p");
    p.textContent = t("not_saved");
    const ul = document.createElement("ul");
    problems.forEach(function (text) {
      const li = document.createElement("li");
      li.textContent = text;
      ul.appendChild(li);
    });
    saveStatus.appendChild(p);
    saveStatus.appendChild(ul);
  }

  async function loadState() {
    let state = null;
    try {
      const result = await call("GET", "/setup/api/state");
      state = result.ok ? result.data : null;
    } catch (e) { state = null; }
    if (!state) { setTimeout(loadState, 1000); return; }
    instance = state.instance;
    if (!drag) { lines = state.lines; }
    if (state.picture === "ready" && state.size) {
      size = state.size;
      pictureState.textContent = "";
      pictureState.hidden = true;
      img.src = "/setup/background.png";
      img.hidden = false;
      render();
      renderList();
      document.body.setAttribute("data-ready", "true");
      document.body.setAttribute("data-instance", instance);
    } else {
      const message = { failed: "picture_failed", unsettled: "picture_unsettled" }[state.picture] || "picture_learning";
      pictureState.textContent = t(message);
      if (state.picture !== "failed") setTimeout(loadState, 1500);
    }
  }

  // --- the live tally --------------------------------------------------------------------------------

  const tallyBody = document.querySelector("#tally tbody");
  async function tally() {
    let result = null;
    try { result = await call("GET", "/setup/api/tally"); } catch (e) { result = null; }
    if (!result || !result.ok) {
      if (restarting) { saveStatus.className = "message ok"; saveStatus.textContent = t("saved") + " " + t("restarting"); }
      return;
    }
    if (instance !== null && result.data.instance !== instance) {
      restarting = false;
      instance = result.data.instance;
      loadState(); // the agent started again (with the saved lines, or rolled back): show what it runs with
    }
    const rows = result.data.lines.map(function (row) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = row.line;
      tr.appendChild(th);
      for (const key of ["in", "out"]) {
        const td = document.createElement("td");
        td.textContent = String(row[key]);
        td.setAttribute("data-line", row.line);
        td.setAttribute("data-direction", key);
        tr.appendChild(td);
      }
      return tr;
    });
    tallyBody.replaceChildren.apply(tallyBody, rows);
  }
  setInterval(tally, 1000);

  // --- validation by tally -----------------------------------------------------------------------

  const runBox = document.getElementById("validation-run");
  const setupBox = document.getElementById("validation-setup");
  const grid = document.getElementById("tap-grid");
  const remaining = document.getElementById("remaining");
  const resultBox = document.getElementById("validation-result");
  let taps = {};
  let endsAt = 0;
  let timer = null;

  function showRefusal(result) {
    resultBox.className = "message error";
    resultBox.textContent = ((result.data && result.data.problems) || [t("problem")]).join("; ");
  }

  function startTapGrid(names) {
    grid.textContent = "";
    taps = {};
    names.forEach(function (name) {
      for (const direction of ["in", "out"]) {
        for (const cls of ["pedestrian", "cyclist"]) {
          const key = name + "|" + direction + "|" + cls;
          taps[key] = 0;
          const button = document.createElement("button");
          button.type = "button";
          button.className = "tap";
          button.setAttribute("data-tap", key);
          const label = document.createElement("span");
          label.textContent = t("tap", { line: name, direction: t(direction), cls: t(cls) });
          const count = document.createElement("strong");
          count.textContent = "0";
          button.appendChild(label);
          button.appendChild(count);
          button.addEventListener("click", function () {
            taps[key] += 1;
            count.textContent = String(taps[key]);
          });
          grid.appendChild(button);
        }
      }
    });
  }

  document.getElementById("start-validation").addEventListener("click", async function () {
    const minutes = Number(document.getElementById("minutes").value);
    const result = await call("POST", "/setup/api/validation/start", { minutes: minutes });
    if (!result.ok) { showRefusal(result); return; }
    resultBox.textContent = "";
    resultBox.className = "";
    startTapGrid(lines.map(function (l) { return l.name; }));
    setupBox.hidden = true;
    runBox.hidden = false;
    endsAt = Date.now() + minutes * 60000;
    timer = setInterval(function () {
      const left = Math.max(0, Math.round((endsAt - Date.now()) / 1000));
      remaining.textContent = t("remaining", { s: left });
      if (left <= 0) finish();
    }, 250);
    const first = grid.querySelector("button");
    if (first) first.focus();
  });

  function stopRun() {
    clearInterval(timer);
    timer = null;
    runBox.hidden = true;
    setupBox.hidden = false;
  }

  async function finish() {
    if (timer === null) return;
    stopRun();
    const tallies = Object.keys(taps).map(function (key) {
      const [line, direction, cls] = key.split("|");
      return { line: line, direction: direction, object_class: cls, count: taps[key] };
    });
    const result = await call("POST", "/setup/api/validation/finish", { tallies: tallies });
    if (!result.ok) { showRefusal(result); return; }
    showResult(result.data);
  }

  function percent(value) {
    return value === null ? t("not_available") : (value * 100).toFixed(1) + "%";
  }

  function showResult(record) {
    resultBox.className = "";
    resultBox.textContent = "";
    const h = document.createElement("h3");
    h.textContent = t("result_heading");
    const table = document.createElement("table");
    table.id = "validation-table";
    const caption = document.createElement("caption");
    caption.textContent = t("result_caption", { minutes: record.minutes });
    table.appendChild(caption);
    const head = document.createElement("tr");
    for (const key of ["line", "in", "counted", "tallied", "error"]) {
      const th = document.createElement("th");
      th.scope = "col";
      th.textContent = key === "in" ? "" : t(key);
      head.appendChild(th);
    }
    const thead = document.createElement("thead");
    thead.appendChild(head);
    table.appendChild(thead);
    const body = document.createElement("tbody");
    record.lines.forEach(function (row) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.scope = "row";
      th.textContent = row.line;
      tr.appendChild(th);
      for (const value of [t(row.direction), row.counted === null ? "–" : row.counted,
        row.tallied === null ? "–" : row.tallied, percent(row.error)]) {
        const td = document.createElement("td");
        td.textContent = String(value);
        tr.appendChild(td);
      }
      body.appendChild(tr);
    });
    table.appendChild(body);
    const overall = document.createElement("p");
    overall.id = "overall-error";
    overall.textContent = t("overall", { error: percent(record.error) });
    resultBox.appendChild(h);
    resultBox.appendChild(table);
    resultBox.appendChild(overall);
  }

  document.getElementById("finish-validation").addEventListener("click", finish);
  document.getElementById("cancel-validation").addEventListener("click", async function () {
    stopRun();
    await call("POST", "/setup/api/validation/cancel", {});
  });

  loadState();
  tally();
})();
