// The landing page's figures, drawn from this server's own API: no library, no external request.
// Every value from the API goes into the page as text (textContent), never as markup.
"use strict";

(() => {
  const SVG_NS = "http://www.w3.org/2000/svg";
  const PAGE_LIMIT = 10000;
  const MAX_PAGES = 50;
  const number = new Intl.NumberFormat("en", { maximumFractionDigits: 0 });
  const decimal = new Intl.NumberFormat("en", { maximumFractionDigits: 1 });
  const percent = new Intl.NumberFormat("en", { style: "percent", maximumFractionDigits: 0 });
  const dayLabel = new Intl.DateTimeFormat("en", { month: "short", day: "numeric", timeZone: "UTC" });
  // Light to dark: low to high utilisation (readable on the map's pale background). Public chargers are
  // mostly idle, so the low end gets finer steps.
  const UTIL_STEPS = [0.1, 0.25, 0.5, 0.75];
  const UTIL_COLOURS = ["#7fb3d5", "#4292c6", "#2171b5", "#08519c", "#08306b"];
  const UTIL_LABELS = ["< 10%", "10–25%", "25–50%", "50–75%", "≥ 75%"];
  const NO_UTIL_COLOUR = "#9aa3ad";
  // Live status: /v1/live/status is polled (a conditional request, so an unchanged answer is a 304), not
  // streamed, so the page needs no long-lived connection and works behind any proxy.
  const LIVE_POLL_MS = 2000;
  const LIVE_HIDDEN_POLL_MS = 15000;
  const LIVE_LABELS = {
    AVAILABLE: "Available",
    CHARGING: "Charging",
    RESERVED: "Reserved",
    BLOCKED: "Blocked",
    OUTOFORDER: "Out of order",
    INOPERATIVE: "Inoperative",
    PLANNED: "Planned",
    REMOVED: "Removed",
    UNKNOWN: "Unknown",
  };
  // A station's one-word state on the map: the first of these that one of its connectors is in.
  const LIVE_PRECEDENCE = Object.keys(LIVE_LABELS);
  const WORST_PORTS = 5;
  // Distinct records the quality rules left out of this release, counted as /v1/quality counts them: a
  // record has a row per dataset it is missing from, and rows generalised to the area count one each.
  const WITHHELD_SQL =
    "SELECT count(DISTINCT record_id) + count(*) FILTER (WHERE record_id IS NULL) AS n " +
    "FROM quality_issues WHERE action = 'withheld'";
  const AREA_COLOURS = ["#1864ab", "#e8590c", "#2b8a3e", "#862e9c", "#c2255c", "#0b7285", "#5c940d", "#a61e4d"];
  const NETWORK = "(network)";
  const monthLabel = new Intl.DateTimeFormat("en", { month: "short", year: "numeric", timeZone: "UTC" });
  const pct = new Intl.NumberFormat("en", { minimumFractionDigits: 1, maximumFractionDigits: 2 });
  const timeLabel = new Intl.DateTimeFormat("en", { hour: "2-digit", minute: "2-digit", second: "2-digit" });

  // ---- small helpers -------------------------------------------------------------------------------------

  function el(tag, attrs = {}, text = null) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== null) node.textContent = String(text);
    return node;
  }

  function svg(tag, attrs = {}, text = null) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    if (text !== null) node.textContent = String(text);
    return node;
  }

  // Legends are HTML lists under the drawing, so their text wraps and keeps its size on small screens.
  function swatch(shape, attrs) {
    const box = svg("svg", { width: 16, height: 14, viewBox: "0 0 16 14", "aria-hidden": "true" });
    box.append(svg(shape, attrs));
    return box;
  }

  function legendList(items) {
    const list = el("ul", { class: "legend" });
    for (const [mark, text] of items) {
      const item = el("li");
      item.append(mark, text);
      list.append(item);
    }
    return list;
  }

  // Drawings get the width they are shown at (up to 760 units), so their text keeps its size on phones.
  function drawingWidth(host) {
    return Math.round(Math.max(320, Math.min(760, host.clientWidth || 760)));
  }

  function link(href, text, attrs = {}) {
    return el("a", { href, ...attrs }, text);
  }

  async function getJson(path) {
    const response = await fetch(path, { headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`${path} answered HTTP ${response.status}`);
    return response.json();
  }

  // All rows of a grouped answer (/usage, /availability), following offsets while the server truncates.
  async function allRows(path) {
    const rows = [];
    let answer = null;
    for (let page = 0; page < MAX_PAGES; page += 1) {
      const sep = path.includes("?") ? "&" : "?";
      answer = await getJson(`${path}${sep}limit=${PAGE_LIMIT}&offset=${rows.length}`);
      rows.push(...answer.rows);
      if (!answer.truncated || answer.rows.length === 0) break;
    }
    return { rows, timeZone: answer ? answer.time_zone : null };
  }

  function sum(values) {
    return values.reduce((total, v) => total + (typeof v === "number" ? v : 0), 0);
  }

  function dateOnly(value) {
    return typeof value === "string" ? value.slice(0, 10) : null;
  }

  function formatDay(day) {
    return dayLabel.format(new Date(`${day}T00:00:00Z`));
  }

  // A round axis maximum (1, 2, 2.5 or 5 times a power of ten) at or above `value`.
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const power = 10 ** Math.floor(Math.log10(value));
    for (const step of [1, 2, 2.5, 5, 10]) {
      if (step * power >= value) return step * power;
    }
    return 10 * power;
  }

  function utilColour(util) {
    if (typeof util !== "number") return NO_UTIL_COLOUR;
    const index = UTIL_STEPS.findIndex((step) => util < step);
    return UTIL_COLOURS[index === -1 ? UTIL_STEPS.length : index];
  }

  function setStatus(text, warn = false) {
    const status = document.getElementById("status");
    status.textContent = text;
    status.classList.toggle("warn", warn);
  }

  // ---- what the page knows without the API ---------------------------------------------------------------

  function fillOrigin() {
    for (const node of document.querySelectorAll(".origin")) node.textContent = window.location.origin;
  }

  function fillExamples(releaseId, stations, timeZone) {
    if (stations.length > 0) {
      for (const node of document.querySelectorAll(".example-station")) {
        node.textContent = encodeURIComponent(stations[0].station_id);
      }
    }
    if (timeZone) {
      for (const node of document.querySelectorAll(".timezone")) node.textContent = timeZone;
    }
    for (const node of document.querySelectorAll(".pinned-base")) node.textContent = `/v1/releases/${releaseId}`;
  }

  // ---- summary figures -----------------------------------------------------------------------------------

  function renderFigures(releaseId, stations, days) {
    const figures = document.getElementById("figures");
    figures.replaceChildren();
    const firstDay = days.length ? days[0].day : null;
    const lastDay = days.length ? days[days.length - 1].day : null;
    const energy = sum(days.map((d) => d.energy));
    const items = [
      ["Public stations", number.format(stations.length)],
      ["Charging sessions", number.format(sum(days.map((d) => d.sessions)))],
      ["Energy delivered", energy >= 10000 ? `${decimal.format(energy / 1000)} MWh` : `${number.format(energy)} kWh`],
      ["Days covered", firstDay ? `${formatDay(firstDay)} – ${formatDay(lastDay)}` : "none yet"],
    ];
    for (const [label, value] of items) {
      const box = el("div");
      box.append(el("dt", {}, label), el("dd", {}, value));
      figures.append(box);
    }
    figures.hidden = false;
    document.getElementById("footer-release").textContent = `Release ${releaseId}.`;
  }

  // ---- daily chart ---------------------------------------------------------------------------------------

  function dailyTotals(areaRows) {
    const byDay = new Map();
    for (const row of areaRows) {
      const day = dateOnly(row.period_start);
      if (!day) continue;
      const entry = byDay.get(day) || { day, energy: 0, sessions: 0 };
      entry.energy += row.energy_kwh || 0;
      entry.sessions += row.sessions || 0;
      byDay.set(day, entry);
    }
    return [...byDay.values()].sort((a, b) => (a.day < b.day ? -1 : 1));
  }

  function renderChart(days) {
    const host = document.getElementById("chart");
    host.replaceChildren();
    if (days.length === 0) {
      host.append(el("p", { class: "empty" }, "This release has no daily usage yet."));
      return;
    }
    const W = drawingWidth(host);
    const H = W < 500 ? 260 : 320;
    const m = { left: 58, right: 58, top: 30, bottom: 40 };
    const plotW = W - m.left - m.right;
    const plotH = H - m.top - m.bottom;
    const eMax = niceMax(Math.max(...days.map((d) => d.energy)));
    // At least 5, so that the 5 ticks of the sessions axis are whole numbers.
    const sMax = Math.max(5, niceMax(Math.max(...days.map((d) => d.sessions))));
    const band = plotW / days.length;
    const barW = Math.max(2, Math.min(48, band * 0.62));
    const xMid = (i) => m.left + band * (i + 0.5);
    const yE = (v) => m.top + plotH - (v / eMax) * plotH;
    const yS = (v) => m.top + plotH - (v / sMax) * plotH;

    const chart = svg("svg", {
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": "chart-title chart-desc",
    });
    const first = days[0].day;
    const last = days[days.length - 1].day;
    chart.append(
      svg("title", { id: "chart-title" }, "Daily energy (kWh) and charging sessions"),
      svg("desc", { id: "chart-desc" },
        `${days.length} days from ${first} to ${last}; the figures are also in the table below the chart.`),
    );

    const grid = svg("g", { class: "grid" });
    const axisLeft = svg("g", { class: "axis axis-energy" });
    const axisRight = svg("g", { class: "axis axis-sessions" });
    const ticks = 5;
    for (let t = 0; t <= ticks; t += 1) {
      const y = m.top + plotH - (t / ticks) * plotH;
      grid.append(svg("line", { x1: m.left, x2: W - m.right, y1: y, y2: y }));
      axisLeft.append(svg("text", { x: m.left - 8, y: y + 4, "text-anchor": "end" },
        decimal.format((eMax * t) / ticks)));
      axisRight.append(svg("text", { x: W - m.right + 8, y: y + 4, "text-anchor": "start" },
        decimal.format((sMax * t) / ticks)));
    }
    axisLeft.append(svg("text", { x: 4, y: m.top - 14, "text-anchor": "start" }, "kWh"));
    axisRight.append(svg("text", { x: W - 4, y: m.top - 14, "text-anchor": "end" }, "sessions"));
    chart.append(grid, axisLeft, axisRight);

    const bars = svg("g", { class: "bars" });
    days.forEach((d, i) => {
      const y = yE(d.energy);
      const bar = svg("rect", {
        class: "bar-energy",
        x: xMid(i) - barW / 2,
        y,
        width: barW,
        height: Math.max(0, m.top + plotH - y),
        "data-day": d.day,
        "data-energy-kwh": d.energy,
      });
      bar.append(svg("title", {}, `${d.day}: ${decimal.format(d.energy)} kWh, ${number.format(d.sessions)} sessions`));
      bars.append(bar);
    });
    chart.append(bars);

    const line = svg("polyline", {
      class: "line-sessions",
      points: days.map((d, i) => `${xMid(i)},${yS(d.sessions)}`).join(" "),
    });
    const points = svg("g", { class: "points" });
    days.forEach((d, i) => {
      const point = svg("circle", {
        class: "point-sessions",
        cx: xMid(i),
        cy: yS(d.sessions),
        r: 4,
        "data-day": d.day,
        "data-sessions": d.sessions,
      });
      point.append(svg("title", {}, `${d.day}: ${number.format(d.sessions)} sessions`));
      points.append(point);
    });
    chart.append(line, points);

    const xAxis = svg("g", { class: "axis axis-days" });
    xAxis.append(svg("line", { x1: m.left, x2: W - m.right, y1: m.top + plotH, y2: m.top + plotH }));
    const every = Math.ceil(days.length / Math.max(1, Math.floor(plotW / 64)));
    days.forEach((d, i) => {
      if (i % every === 0) {
        xAxis.append(svg("text", { x: xMid(i), y: m.top + plotH + 20, "text-anchor": "middle" }, formatDay(d.day)));
      }
    });
    chart.append(xAxis);

    host.append(
      legendList([
        [swatch("rect", { class: "legend-energy", x: 1, y: 2, width: 14, height: 10 }), "Energy (kWh, left axis)"],
        [swatch("rect", { class: "legend-sessions", x: 1, y: 5, width: 14, height: 4 }), "Sessions (right axis)"],
      ]),
      chart,
    );

    const table = document.querySelector("#chart-data tbody");
    table.replaceChildren();
    for (const d of days) {
      const row = el("tr");
      row.append(el("th", { scope: "row" }, d.day), el("td", { class: "num" }, decimal.format(d.energy)),
        el("td", { class: "num" }, number.format(d.sessions)));
      table.append(row);
    }
    document.getElementById("chart-data").hidden = false;
  }

  // ---- stations: map and table ---------------------------------------------------------------------------

  function stationFigures(usageRows, availabilityRows) {
    const figures = new Map();
    const of = (id) => {
      if (!figures.has(id)) figures.set(id, { sessions: 0, energy: 0, occupied: 0, open: 0 });
      return figures.get(id);
    };
    for (const row of usageRows) {
      const f = of(row.station_id);
      f.sessions += row.sessions || 0;
      f.energy += row.energy_kwh || 0;
    }
    // Utilisation over the whole release: occupied ÷ (available + occupied + reserved) connector-minutes.
    for (const row of availabilityRows) {
      const f = of(row.station_id);
      f.occupied += row.occupied_minutes || 0;
      f.open += (row.available_minutes || 0) + (row.occupied_minutes || 0) + (row.reserved_minutes || 0);
    }
    for (const f of figures.values()) f.utilisation = f.open > 0 ? f.occupied / f.open : null;
    return figures;
  }

  function rowId(index) {
    return `station-row-${index}`;
  }

  function renderMap(stations, figures) {
    const host = document.getElementById("map");
    host.replaceChildren();
    const placed = stations
      .map((s, index) => ({ s, index }))
      .filter(({ s }) => typeof s.latitude === "number" && typeof s.longitude === "number");
    if (placed.length === 0) {
      host.append(el("p", { class: "empty" }, "No station in this release has coordinates to map."));
      return;
    }
    const lats = placed.map(({ s }) => s.latitude);
    const lons = placed.map(({ s }) => s.longitude);
    const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
    // Equirectangular projection scaled by the cosine of the mean latitude: true shapes at city scale.
    const shrink = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
    const spanX = Math.max((maxLon - minLon) * shrink, 0.005);
    const spanY = Math.max(maxLat - minLat, 0.005);
    const W = drawingWidth(host);
    const pad = 40;
    const scale = (W - 2 * pad) / spanX;
    const plotH = Math.round(Math.min(420, Math.max(220, spanY * scale)));
    const H = plotH + 2 * pad;
    const scaleY = Math.min(scale, plotH / spanY);
    const offX = (W - spanX * scaleY) / 2;
    const offY = pad + (plotH - spanY * scaleY) / 2;
    const x = (lon) => offX + ((lon - minLon) * shrink) * scaleY;
    const y = (lat) => offY + (maxLat - lat) * scaleY;

    const map = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-labelledby": "map-title map-desc" });
    map.append(
      svg("title", { id: "map-title" }, "Map of the public charging stations, coloured by utilisation"),
      svg("desc", { id: "map-desc" },
        `${placed.length} stations; darker is busier. Each station links to its row in the table below.`),
    );

    const areas = new Map();
    for (const { s } of placed) {
      const key = s.area || "";
      const a = areas.get(key) || { x: 0, top: Infinity, n: 0 };
      a.x += x(s.longitude);
      a.top = Math.min(a.top, y(s.latitude));
      a.n += 1;
      areas.set(key, a);
    }
    const labels = svg("g", { class: "area-labels", "aria-hidden": "true" });
    for (const [name, a] of areas) {
      if (!name) continue;
      // Above the area's northernmost station, so the label never covers a dot.
      labels.append(svg("text", { class: "area-label", x: a.x / a.n, y: a.top - 16, "text-anchor": "middle" }, name));
    }

    const dots = svg("g", { class: "stations" });
    for (const { s, index } of placed) {
      const f = figures.get(s.station_id);
      const util = f ? f.utilisation : null;
      const anchor = svg("a", { href: `#${rowId(index)}` });
      const dot = svg("circle", {
        class: "station-dot",
        cx: x(s.longitude),
        cy: y(s.latitude),
        r: 9,
        fill: utilColour(util),
        "data-station-id": s.station_id,
      });
      const utilText = typeof util === "number" ? percent.format(util) : "unknown";
      dot.append(svg("title", {}, `${s.station_id} ${s.name || ""} — utilisation ${utilText}`));
      // The ring around the dot is the station's live state (filled in by applyLive).
      const ring = svg("circle", {
        class: "live-ring live-unknown",
        cx: x(s.longitude),
        cy: y(s.latitude),
        r: 12.5,
        "data-station-id": s.station_id,
      });
      anchor.append(ring, dot);
      dots.append(anchor);
    }
    map.append(labels, dots);
    const legend = legendList(
      UTIL_COLOURS.map((colour, i) => [swatch("circle", { cx: 7, cy: 7, r: 6, fill: colour }), UTIL_LABELS[i]]),
    );
    legend.prepend(el("li", { class: "legend-title" }, "Utilisation:"));
    const liveLegend = legendList(
      ["AVAILABLE", "CHARGING", "OUTOFORDER", "UNKNOWN"].map((state) => [
        swatch("circle", { cx: 7, cy: 7, r: 5, class: `live-ring live-${state.toLowerCase()}` }),
        liveLabel(state),
      ]),
    );
    liveLegend.prepend(el("li", { class: "legend-title" }, "Live status (ring):"));
    host.append(map, legend, liveLegend);
    applyLive();
  }

  function renderStationTable(stations, figures) {
    const body = document.querySelector("#station-table tbody");
    body.replaceChildren();
    if (stations.length === 0) {
      const row = el("tr");
      row.append(el("td", { colspan: 9, class: "empty" }, "No public station in this release."));
      body.append(row);
      return;
    }
    stations.forEach((s, index) => {
      const f = figures.get(s.station_id) || { sessions: 0, energy: 0, utilisation: null };
      const row = el("tr", { id: rowId(index), "data-station-id": s.station_id });
      row.append(
        el("th", { scope: "row" }, s.station_id),
        el("td", {}, s.name || "—"),
        el("td", {}, s.area || "—"),
        el("td", { class: "num" }, s.connectors ?? "—"),
        el("td", { class: "num" }, typeof s.max_power_kw === "number" ? decimal.format(s.max_power_kw) : "—"),
        el("td", { class: "num" }, number.format(f.sessions)),
        el("td", { class: "num" }, decimal.format(f.energy)),
      );
      const cell = el("td", { class: "utilisation" });
      if (typeof f.utilisation === "number") {
        cell.setAttribute("data-utilisation", f.utilisation);
        const wrap = el("span", { class: "util" });
        const meter = el("meter", { min: 0, max: 1, value: f.utilisation, "aria-hidden": "true" });
        wrap.append(meter, el("span", { class: "value" }, percent.format(f.utilisation)));
        cell.append(wrap);
      } else {
        cell.textContent = "no data";
      }
      row.append(cell, el("td", { class: "live" }, "…"));
      body.append(row);
    });
  }

  // ---- live status: table cells and map rings, updated in place -----------------------------------------

  const live = { byStation: null, etag: null, timer: null };

  function liveByStation(rows) {
    const byStation = new Map();
    for (const row of rows) {
      if (!byStation.has(row.station_id)) byStation.set(row.station_id, []);
      byStation.get(row.station_id).push(row);
    }
    for (const list of byStation.values()) list.sort((a, b) => a.connector - b.connector);
    return byStation;
  }

  function stationLiveState(rows) {
    const states = new Set(rows.map((r) => r.status));
    return LIVE_PRECEDENCE.find((s) => states.has(s)) || "UNKNOWN";
  }

  function liveLabel(status) {
    return LIVE_LABELS[status] || LIVE_LABELS.UNKNOWN;
  }

  function applyLive() {
    if (live.byStation === null) return;
    for (const row of document.querySelectorAll("#station-table tbody tr[data-station-id]")) {
      const cell = row.querySelector("td.live");
      const rows = live.byStation.get(row.dataset.stationId) || [];
      const chips = rows.map((r) => {
        const chip = el("span", {
          class: `live-chip live-${r.status.toLowerCase()}`,
          "data-connector": r.connector,
          "data-live-status": r.status,
          title: `Connector ${r.connector}: ${liveLabel(r.status)} since ${r.since}`,
        });
        chip.append(el("span", { class: "connector" }, r.connector), ` ${liveLabel(r.status)}`);
        return chip;
      });
      if (chips.length === 0) cell.replaceChildren(el("span", { class: "empty" }, "not in the live feed"));
      else cell.replaceChildren(...chips);
    }
    for (const ring of document.querySelectorAll("#map circle.live-ring[data-station-id]")) {
      const rows = live.byStation.get(ring.dataset.stationId) || [];
      const state = rows.length ? stationLiveState(rows) : "UNKNOWN";
      ring.setAttribute("class", `live-ring live-${state.toLowerCase()}`);
      ring.dataset.liveStatus = state;
      ring.replaceChildren(svg("title", {}, `${ring.dataset.stationId}: ${liveLabel(state)} now`));
    }
  }

  function setLiveNote(text, warn = false) {
    const note = document.getElementById("live-note");
    note.textContent = text;
    note.classList.toggle("warn", warn);
  }

  async function pollLive() {
    try {
      // no-cache: the browser revalidates with If-None-Match every time, and the server answers 304
      // while nothing changed; the ETag then tells that there is nothing to redraw.
      const response = await fetch("/v1/live/status", { headers: { Accept: "application/json" }, cache: "no-cache" });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const etag = response.headers.get("ETag");
      if (etag === null || etag !== live.etag) {
        const answer = await response.json();
        live.byStation = liveByStation(answer.statuses);
        live.etag = etag;
        live.generatedAt = answer.generated_at;
        applyLive();
        document.body.dataset.live = "on";
      }
      setLiveNote(`Live connector status, checked ${timeLabel.format(new Date())}; ` +
        `last change ${timeLabel.format(new Date(live.generatedAt))}.`);
    } catch (error) {
      setLiveNote(`The live status could not be loaded (${error.message}); trying again.`, true);
    } finally {
      live.timer = setTimeout(pollLive, document.hidden ? LIVE_HIDDEN_POLL_MS : LIVE_POLL_MS);
    }
  }

  function startLive() {
    if (live.timer !== null) return;
    live.timer = setTimeout(pollLive, 0);
    // Back from a background tab: look at once rather than after the slow background interval.
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && live.timer !== null) {
        clearTimeout(live.timer);
        live.timer = setTimeout(pollLive, 0);
      }
    });
  }

  // ---- quality: what this release withholds -------------------------------------------------------------

  async function renderWithheld(base) {
    const answer = await getJson(`${base}/sql?q=${encodeURIComponent(WITHHELD_SQL)}`);
    const n = Number(answer.rows[0].n);
    const note = document.getElementById("quality-note");
    const text = `${number.format(n)} ${n === 1 ? "record" : "records"} withheld in this release`;
    note.replaceChildren(
      link("/v1/quality", text, { id: "quality-link", "data-withheld": n }),
      n === 0
        ? " — every record passed the quality rules."
        : " — the quality report lists each one, the rule it failed and why.",
    );
    note.hidden = false;
  }

  // ---- reliability: per district and month, and the worst ports ------------------------------------------

  // All power classes of one district-month together: (total − not working) ÷ total connector-minutes.
  function reliabilityByAreaMonth(rows) {
    const groups = new Map();
    for (const row of rows) {
      const month = dateOnly(row.date);
      const key = `${month}|${row.area}`;
      const g = groups.get(key) || { month, area: row.area, stations: 0, total: 0, notWorking: 0 };
      g.stations += row.stations || 0;
      g.total += row.total_minutes || 0;
      g.notWorking += row.not_working_minutes || 0;
      groups.set(key, g);
    }
    for (const g of groups.values()) g.pct = g.total > 0 ? ((g.total - g.notWorking) / g.total) * 100 : null;
    return [...groups.values()].sort((a, b) => (a.month + a.area < b.month + b.area ? -1 : 1));
  }

  function formatMonth(month) {
    return monthLabel.format(new Date(`${month}T00:00:00Z`));
  }

  function renderReliabilityChart(groups) {
    const host = document.getElementById("reliability-chart");
    host.replaceChildren();
    const shown = groups.filter((g) => g.pct !== null);
    if (shown.length === 0) {
      host.append(el("p", { class: "empty" }, "This release has no reliability figures yet."));
      return;
    }
    const months = [...new Set(shown.map((g) => g.month))].sort();
    const areas = [...new Set(shown.filter((g) => g.area !== NETWORK).map((g) => g.area))].sort();
    const colour = new Map(areas.map((a, i) => [a, AREA_COLOURS[i % AREA_COLOURS.length]]));
    // Reliability is mostly near 100 %: the axis starts at the multiple of 5 % below the lowest value.
    const low = Math.max(0, Math.min(95, Math.floor((Math.min(...shown.map((g) => g.pct)) - 0.5) / 5) * 5));
    const W = drawingWidth(host);
    const H = W < 500 ? 260 : 300;
    const m = { left: 52, right: 16, top: 24, bottom: 40 };
    const plotW = W - m.left - m.right;
    const plotH = H - m.top - m.bottom;
    const band = plotW / months.length;
    const barW = Math.max(3, Math.min(40, (band * 0.8) / Math.max(1, areas.length)));
    const y = (v) => m.top + plotH - ((v - low) / (100 - low)) * plotH;
    const chart = svg("svg", {
      viewBox: `0 0 ${W} ${H}`,
      role: "img",
      "aria-labelledby": "reliability-chart-title reliability-chart-desc",
    });
    chart.append(
      svg("title", { id: "reliability-chart-title" }, "Reliability per district and month (UK reg. 7)"),
      svg("desc", { id: "reliability-chart-desc" },
        `${areas.length} districts over ${months.length} months, from ${low} % to 100 %; ` +
        "the figures are also in the table below the chart."),
    );
    const grid = svg("g", { class: "grid" });
    const axis = svg("g", { class: "axis" });
    for (let t = 0; t <= 5; t += 1) {
      const v = low + ((100 - low) * t) / 5;
      grid.append(svg("line", { x1: m.left, x2: W - m.right, y1: y(v), y2: y(v) }));
      axis.append(svg("text", { x: m.left - 8, y: y(v) + 4, "text-anchor": "end" }, `${decimal.format(v)} %`));
    }
    chart.append(grid, axis);
    const bars = svg("g", { class: "bars" });
    const net = svg("g", { class: "network" });
    const xAxis = svg("g", { class: "axis" });
    months.forEach((month, i) => {
      const left = m.left + band * i + (band - barW * areas.length) / 2;
      areas.forEach((area, j) => {
        const g = shown.find((r) => r.month === month && r.area === area);
        if (!g) return;
        const bar = svg("rect", {
          class: "bar-reliability",
          x: left + j * barW + 1,
          y: y(g.pct),
          width: Math.max(1, barW - 2),
          height: Math.max(1, m.top + plotH - y(g.pct)),
          fill: colour.get(area),
          "data-month": month,
          "data-area": area,
          "data-reliability-pct": g.pct,
        });
        bar.append(svg("title", {}, `${area}, ${formatMonth(month)}: ${pct.format(g.pct)} %`));
        bars.append(bar);
      });
      const whole = shown.find((r) => r.month === month && r.area === NETWORK);
      if (whole) {
        const mark = svg("line", {
          class: "line-network",
          x1: left - 4,
          x2: left + barW * areas.length + 4,
          y1: y(whole.pct),
          y2: y(whole.pct),
          "data-month": month,
          "data-reliability-pct": whole.pct,
        });
        mark.append(svg("title", {}, `Whole network, ${formatMonth(month)}: ${pct.format(whole.pct)} %`));
        net.append(mark);
      }
      xAxis.append(svg("text", { x: m.left + band * (i + 0.5), y: m.top + plotH + 20, "text-anchor": "middle" },
        formatMonth(month)));
    });
    xAxis.append(svg("line", { x1: m.left, x2: W - m.right, y1: m.top + plotH, y2: m.top + plotH }));
    chart.append(bars, net, xAxis);
    host.append(
      legendList([
        ...areas.map((a) => [swatch("rect", { x: 1, y: 2, width: 14, height: 10, fill: colour.get(a) }), a]),
        [swatch("rect", { class: "legend-network", x: 1, y: 6, width: 14, height: 3 }), "Whole network"],
      ]),
      chart,
    );
    const body = document.querySelector("#reliability-data tbody");
    body.replaceChildren();
    for (const g of groups) {
      const row = el("tr", { "data-month": g.month, "data-area": g.area });
      row.append(
        el("th", { scope: "row" }, formatMonth(g.month)),
        el("td", {}, g.area === NETWORK ? "Whole network" : g.area),
        el("td", { class: "num" }, number.format(g.stations)),
        el("td", { class: "num" }, g.pct === null ? "—" : `${pct.format(g.pct)} %`),
      );
      body.append(row);
    }
    document.getElementById("reliability-data").hidden = false;
  }

  function renderWorstPorts(month, rows, stations) {
    const names = new Map(stations.map((s) => [s.station_id, s.name]));
    const body = document.querySelector("#worst-ports tbody");
    body.replaceChildren();
    document.getElementById("worst-caption").textContent =
      month ? `Worst ports of ${formatMonth(month)}` : "Worst ports of the month";
    const ranked = rows.filter((r) => typeof r.uptime_pct === "number");
    if (ranked.length === 0) {
      const row = el("tr");
      row.append(el("td", { colspan: 6, class: "empty" }, "No port uptime in this release yet."));
      body.append(row);
      return;
    }
    for (const r of ranked) {
      const row = el("tr", {
        "data-station-id": r.station_id,
        "data-connector": r.connector_id,
        "data-uptime-pct": r.uptime_pct,
      });
      row.append(
        el("th", { scope: "row" }, r.station_id),
        el("td", {}, names.get(r.station_id) || "—"),
        el("td", { class: "num" }, r.connector_id),
        el("td", {}, r.area || "—"),
        el("td", { class: "num" }, decimal.format(r.outage_minutes)),
        el("td", { class: r.uptime_pct > 97 ? "num" : "num below-target" }, `${pct.format(r.uptime_pct)} %`),
      );
      body.append(row);
    }
  }

  async function renderReliability(base, stations) {
    const network = await allRows(`${base}/datasets/network_reliability_monthly/rows?order_by=date`);
    const groups = reliabilityByAreaMonth(network.rows);
    renderReliabilityChart(groups);
    redrawOnResize(() => renderReliabilityChart(groups));
    const month = groups.length ? groups[groups.length - 1].month : null;
    let worst = [];
    if (month) {
      const next = new Date(`${month}T00:00:00Z`);
      next.setUTCMonth(next.getUTCMonth() + 1);
      const to = next.toISOString().slice(0, 10);
      const answer = await getJson(`${base}/datasets/port_uptime_monthly/rows?from=${month}&to=${to}` +
        `&order_by=uptime_pct,-outage_minutes&limit=${WORST_PORTS}`);
      worst = answer.rows;
    }
    renderWorstPorts(month, worst, stations);
  }

  // ---- datasets ------------------------------------------------------------------------------------------

  function coverage(ds) {
    const start = dateOnly(ds.temporal_coverage && ds.temporal_coverage.start);
    const end = dateOnly(ds.temporal_coverage && ds.temporal_coverage.end);
    if (!start) return ds.name === "stations" ? "current registry" : "—";
    return start === end ? start : `${start} – ${end}`;
  }

  function licenceCell(ds) {
    const cell = el("td");
    const licences = ds.licenses || [];
    licences.forEach((lic, i) => {
      if (i > 0) cell.append(", ");
      const name = lic.title || lic.name || "licence";
      const href = lic.path || lic.url;
      cell.append(typeof href === "string" && /^https?:\/\//.test(href) ? link(href, name, { rel: "license" }) : name);
    });
    if (licences.length === 0) cell.textContent = "—";
    return cell;
  }

  function renderDatasets(catalogue) {
    const body = document.querySelector("#dataset-table tbody");
    body.replaceChildren();
    for (const ds of catalogue.datasets) {
      const row = el("tr", { "data-dataset": ds.name });
      const what = el("td");
      const title = el("div");
      title.append(el("code", {}, ds.name), ` — ${ds.title}`);
      what.append(title, el("div", { class: "desc" }, ds.description));
      const rows = el("td", { class: "num rows", "data-rows": ds.rows }, number.format(ds.rows));
      const downloads = el("td", { class: "downloads" });
      const base = `/v1/datasets/${encodeURIComponent(ds.name)}`;
      downloads.append(
        link(`${base}/download.parquet`, "Parquet", { "data-format": "parquet", download: `${ds.name}.parquet` }),
        link(`${base}/download.csv`, "CSV", { "data-format": "csv", download: `${ds.name}.csv` }),
        link(base, "Schema", { "data-format": "schema" }),
      );
      row.append(what, el("td", { class: "coverage" }, coverage(ds)), rows, licenceCell(ds), downloads);
      body.append(row);
    }
    document.getElementById("release-note").textContent =
      `This is release ${catalogue.release}; its own files stay online under /v1/releases/${catalogue.release}/.`;
  }

  // ---- no release yet ------------------------------------------------------------------------------------

  function renderNoRelease() {
    setStatus(
      "No release has been published yet. The pipeline publishes the first one once it has processed " +
        "a day of charging data; reload this page then. The examples below work as soon as it is online.",
      true,
    );
    document.getElementById("chart").replaceChildren(el("p", { class: "empty" }, "No release yet."));
    document.getElementById("map").replaceChildren();
    for (const [selector, columns] of [["#station-table tbody", 9], ["#dataset-table tbody", 5]]) {
      const row = el("tr");
      row.append(el("td", { colspan: columns, class: "empty" }, "No release yet."));
      document.querySelector(selector).replaceChildren(row);
    }
  }

  // ---- main ----------------------------------------------------------------------------------------------

  async function main() {
    fillOrigin();
    const health = await getJson("/health");
    if (!health.release) {
      renderNoRelease();
      document.body.dataset.state = "no-release";
      return;
    }
    // Everything from the one release /health names, so the figures cannot mix two releases mid-swap.
    const base = `/v1/releases/${encodeURIComponent(health.release)}`;
    const [catalogue, stationAnswer, areaDays, stationMonths, availability] = await Promise.all([
      getJson(`${base}/datasets`),
      getJson(`${base}/stations`),
      allRows(`${base}/usage?group_by=area&period=day`),
      allRows(`${base}/usage?group_by=station&period=month`),
      allRows(`${base}/availability?group_by=station&period=month`),
    ]);
    const stations = stationAnswer.stations;
    const days = dailyTotals(areaDays.rows);
    const figures = stationFigures(stationMonths.rows, availability.rows);
    renderFigures(catalogue.release, stations, days);
    renderChart(days);
    renderMap(stations, figures);
    redrawOnResize(() => {
      renderChart(days);
      renderMap(stations, figures);
    });
    renderStationTable(stations, figures);
    startLive();
    renderDatasets(catalogue);
    await Promise.all([renderWithheld(base), renderReliability(base, stations)]);
    fillExamples(catalogue.release, stations, areaDays.timeZone);
    setStatus(`Showing release ${catalogue.release}.`);
    document.body.dataset.state = "ready";
  }

  function redrawOnResize(redraw) {
    let width = document.getElementById("chart").clientWidth;
    let timer = null;
    window.addEventListener("resize", () => {
      clearTimeout(timer);
      timer = setTimeout(() => {
        const now = document.getElementById("chart").clientWidth;
        if (now !== width) {
          width = now;
          redraw();
        }
      }, 150);
    });
  }

  function start() {
    main().catch((error) => {
      setStatus(`The data could not be loaded (${error.message}). Try again in a moment.`, true);
      document.body.dataset.state = "error";
    });
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
