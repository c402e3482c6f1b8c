// The live dashboard: reads /v1/live and draws a swarm's figures, agents, alerts, events and decisions.
(function () {
  "use strict";

  const WINDOW_S = 600; // the charts show the last ten minutes
  const MAX_ROWS = 10000; // points per series, whatever the interval: memory stays bounded
  const MAX_EVENTS = 200;
  const MAX_DECISIONS = 200;
  const RESOLVED_KEEP_S = 600; // a resolved alert stays listed, greyed, this long
  const CARDS_UP_TO = 24; // more agents than this: a heat map instead of cards
  const BACKOFF_MIN_MS = 500;
  const BACKOFF_MAX_MS = 10000;
  const TOKEN_KEY = "swarmperf.token";
  const THEME_KEY = "swarmperf.theme";
  const LOCALE = "en-US"; // fixed, so that figures read the same on every machine

  // Read by tests: the last seq taken in, and how many messages arrived.
  const dashboard = { lastSeq: 0, messages: 0, status: "connecting" };
  window.dashboard = dashboard;

  const $ = (id) => document.getElementById(id);

  const state = {
    incarnation: null, // which server run the numbers belong to (they restart with it)
    live: null,
    ended: false,
    replayDone: false,
    interval: 1,
    lastTs: null,
    rows: [], // one per metrics message: only the figures the charts draw
    latest: null, // the latest metrics message, for agents and the header
    prevTotals: null,
    prevTotalsTs: null,
    alerts: new Map(),
    alertsDirty: false,
    pendingEvents: [],
    pendingDecisions: new Map(),
    heatMode: null,
    token: null,
  };

  // -- formatting ------------------------------------------------------------------------

  const numberFormats = new Map();
  function fmtNumber(v, digits) {
    let f = numberFormats.get(digits);
    if (!f) {
      f = new Intl.NumberFormat(LOCALE, { maximumFractionDigits: digits });
      numberFormats.set(digits, f);
    }
    return f.format(v);
  }

  function num(v) {
    return typeof v === "number" && Number.isFinite(v) ? v : null;
  }

  function fmtCount(v) {
    const a = Math.abs(v);
    return fmtNumber(v, a >= 100 ? 0 : a >= 10 ? 1 : 2);
  }

  function fmtInt(v) {
    return fmtNumber(Math.round(v), 0);
  }

  function sig3(v) {
    const a = Math.abs(v);
    return fmtNumber(v, a >= 100 ? 0 : a >= 10 ? 1 : 2);
  }

  function fmtDuration(s) {
    const a = Math.abs(s);
    if (a === 0) return "0 ms";
    if (a < 1e-3) return sig3(s * 1e6) + " µs";
    if (a < 1) return sig3(s * 1e3) + " ms";
    if (a < 120) return sig3(s) + " s";
    return sig3(s / 60) + " min";
  }

  function fmtPercent(p) {
    const a = Math.abs(p);
    return fmtNumber(p, a === 0 ? 0 : a < 1 ? 2 : a < 100 ? 1 : 0) + " %";
  }

  function fmtBytesRate(b) {
    const units = ["B/s", "kB/s", "MB/s", "GB/s", "TB/s"];
    let i = 0;
    let v = b;
    while (Math.abs(v) >= 1000 && i < units.length - 1) {
      v /= 1000;
      i += 1;
    }
    return sig3(v) + " " + units[i];
  }

  function fmtShort(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return sig3(v / 1e9) + "G";
    if (a >= 1e6) return sig3(v / 1e6) + "M";
    if (a >= 1e3) return sig3(v / 1e3) + "k";
    return sig3(v);
  }

  function fmtShortBytes(b) {
    return fmtBytesRate(b).replace("/s", "");
  }

  const clockFormat = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hourCycle: "h23",
  });
  const minuteFormat = new Intl.DateTimeFormat(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });

  function fmtClock(ts) {
    return clockFormat.format(new Date(ts * 1000));
  }

  function setTime(el, ts) {
    el.textContent = fmtClock(ts);
    el.dateTime = new Date(ts * 1000).toISOString();
    el.title = new Date(ts * 1000).toLocaleString();
  }

  function el(tag, className, text) {
    const e = document.createElement(tag);
    if (className) e.className = className;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  // -- theme -----------------------------------------------------------------------------

  const darkQuery = window.matchMedia("(prefers-color-scheme: dark)");
  let palette = null;

  let sessionTheme = null; // the toggle's choice where there is no storage (private window)

  function storedTheme() {
    try {
      const t = localStorage.getItem(THEME_KEY);
      return t === "light" || t === "dark" ? t : sessionTheme;
    } catch (e) {
      return sessionTheme;
    }
  }

  function applyTheme() {
    const chosen = storedTheme();
    const dark = chosen ? chosen === "dark" : darkQuery.matches;
    // The page's attribute is the one place the theme is decided, the reader's choice or
    // else the system's, so that the stylesheet holds the dark colours once.
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    $("theme-toggle").setAttribute("aria-pressed", dark ? "true" : "false");
    palette = null;
    redrawCharts();
  }

  function toggleTheme() {
    const dark = $("theme-toggle").getAttribute("aria-pressed") === "true";
    try {
      localStorage.setItem(THEME_KEY, dark ? "light" : "dark");
    } catch (e) {
      // no storage (private window): the choice lasts until the page closes
      sessionTheme = dark ? "light" : "dark";
    }
    applyTheme();
  }

  function colors() {
    if (!palette) {
      const cs = getComputedStyle(document.documentElement);
      palette = {};
      for (const name of ["c1", "c2", "c3", "c4", "c5", "c6", "grid", "muted", "text", "panel", "border"]) {
        palette[name] = cs.getPropertyValue("--" + name).trim();
      }
    }
    return palette;
  }

  // -- charts ----------------------------------------------------------------------------

  const percentAxis = (v) => fmtNumber(v, 0) + "%";

  const CHARTS = [
    {
      id: "throughput",
      fill: true,
      floor: 1,
      axis: fmtShort,
      series: [{ label: "throughput", get: (r) => r.throughput, color: "c1", fmt: (v) => fmtCount(v) + " tasks/s" }],
    },
    {
      id: "latency",
      floor: 0.001,
      axis: fmtDuration,
      series: [
        { label: "p50", get: (r) => r.p50, color: "c1", fmt: fmtDuration },
        { label: "p90", get: (r) => r.p90, color: "c3", fmt: fmtDuration },
        { label: "p99", get: (r) => r.p99, color: "c2", fmt: fmtDuration },
      ],
    },
    {
      id: "wait-service",
      floor: 0.001,
      axis: fmtDuration,
      series: [
        { label: "wait p50", get: (r) => r.wait50, color: "c6", fmt: fmtDuration },
        { label: "wait p99", get: (r) => r.wait99, color: "c6", dash: true, fmt: fmtDuration },
        { label: "service p50", get: (r) => r.svc50, color: "c2", fmt: fmtDuration },
        { label: "service p99", get: (r) => r.svc99, color: "c2", dash: true, fmt: fmtDuration },
      ],
    },
    {
      id: "errors",
      fill: true,
      floor: 1,
      axis: percentAxis,
      series: [{ label: "error rate", get: (r) => r.errors, color: "c5", fmt: fmtPercent }],
    },
    {
      id: "queue",
      floor: 4,
      axis: fmtShort,
      series: [
        { label: "critical", get: (r) => r.qCritical, color: "c5", fmt: fmtInt },
        { label: "high", get: (r) => r.qHigh, color: "c2", fmt: fmtInt },
        { label: "normal", get: (r) => r.qNormal, color: "c1", fmt: fmtInt },
        { label: "low", get: (r) => r.qLow, color: "c6", fmt: fmtInt },
      ],
    },
    {
      id: "admission",
      floor: 4,
      axis: fmtShort,
      suffix: " per interval",
      series: [
        { label: "rejected", get: (r) => r.rejected, color: "c5", fmt: fmtInt },
        { label: "shed", get: (r) => r.shed, color: "c2", fmt: fmtInt },
      ],
    },
    {
      id: "cpu",
      fixedMax: 100,
      axis: percentAxis,
      cores: true,
      series: [
        { label: "all cores", get: (r) => r.cpu, color: "c2", width: 2, fmt: fmtPercent },
        { label: "busiest core", get: (r) => r.cpuMax, color: "c1", hidden: true, fmt: fmtPercent },
      ],
    },
    {
      id: "memory",
      fill: true,
      fixedMax: 100,
      axis: percentAxis,
      series: [{ label: "memory", get: (r) => r.memory, color: "c3", fmt: fmtPercent }],
    },
    {
      id: "network",
      floor: 1000,
      axis: fmtShortBytes,
      series: [
        { label: "sent", get: (r) => r.sent, color: "c1", fmt: fmtBytesRate },
        { label: "received", get: (r) => r.recv, color: "c4", fmt: fmtBytesRate },
      ],
    },
  ];

  const PAD = { left: 44, right: 6, top: 6, bottom: 17 };
  const charts = [];

  function setupCharts() {
    const tip = $("chart-tip");
    for (const def of CHARTS) {
      const root = $("chart-" + def.id);
      root.classList.toggle("multi", def.series.length > 1);
      const canvas = root.querySelector("canvas");
      const chart = {
        def,
        canvas,
        ctx: canvas.getContext("2d"),
        value: $("chart-" + def.id + "-value"),
        label: canvas.getAttribute("aria-label"),
        valueKey: null,
        w: 0,
        h: 0,
        hover: null,
      };
      charts.push(chart);
      if (typeof ResizeObserver === "function") {
        new ResizeObserver(() => {
          sizeChart(chart);
          drawChart(chart);
        }).observe(canvas);
      }
      canvas.addEventListener("pointermove", (e) => {
        const rect = canvas.getBoundingClientRect();
        chart.hover = { x: e.clientX - rect.left, cx: e.clientX, cy: e.clientY };
        drawChart(chart);
      });
      canvas.addEventListener("pointerleave", () => {
        chart.hover = null;
        tip.hidden = true;
        drawChart(chart);
      });
    }
    window.addEventListener("resize", () => {
      for (const c of charts) sizeChart(c);
      redrawCharts();
    });
  }

  function sizeChart(chart) {
    const rect = chart.canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(rect.width));
    const h = Math.max(1, Math.round(rect.height));
    if (w === chart.w && h === chart.h && chart.dpr === dpr) return;
    chart.w = w;
    chart.h = h;
    chart.dpr = dpr;
    chart.canvas.width = Math.round(w * dpr);
    chart.canvas.height = Math.round(h * dpr);
  }

  function redrawCharts() {
    for (const c of charts) drawChart(c);
  }

  function niceMax(v) {
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    const f = v / p;
    const n = f <= 1 ? 1 : f <= 2 ? 2 : f <= 2.5 ? 2.5 : f <= 5 ? 5 : 10;
    return n * p;
  }

  // The series a chart draws: CPU adds one faint line per core.
  function seriesOf(chart, rows) {
    const def = chart.def;
    if (!def.cores) return def.series;
    let cores = 0;
    for (const r of rows) cores = Math.max(cores, r.cores.length);
    const list = [];
    for (let i = 0; i < cores; i += 1) {
      list.push({ get: (r) => (i < r.cores.length ? r.cores[i] : null), color: "c1", width: 1, alpha: 0.3, core: true });
    }
    return list.concat(def.series.filter((s) => !s.hidden));
  }

  function firstVisible(rows, t0) {
    let lo = 0;
    let hi = rows.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (rows[mid].ts < t0) lo = mid + 1;
      else hi = mid;
    }
    return Math.max(0, lo - 1); // one point before the window, so the line enters from the edge
  }

  function drawChart(chart) {
    if (!chart.w) sizeChart(chart);
    const { ctx, w, h, def } = chart;
    const pal = colors();
    const rows = state.rows;
    const t1 = rows.length ? rows[rows.length - 1].ts : Date.now() / 1000;
    // Ten minutes once there are ten minutes of data; until then what there is (at least a
    // minute), so that a young swarm's lines are not a sliver at the right edge.
    const span = rows.length ? Math.min(WINDOW_S, Math.max(60, t1 - rows[0].ts)) : WINDOW_S;
    const t0 = t1 - span;
    chart.span = span;
    const start = firstVisible(rows, t0);
    const series = seriesOf(chart, rows);

    let max = 0;
    let any = false;
    for (let i = start; i < rows.length; i += 1) {
      for (const s of series) {
        const v = s.get(rows[i]);
        if (v === null) continue;
        any = true;
        if (v > max) max = v;
      }
    }
    const yMax = def.fixedMax || niceMax(Math.max(max, def.floor || 1) * 1.05);
    const left = PAD.left;
    const right = w - PAD.right;
    const top = PAD.top;
    const bottom = h - PAD.bottom;
    const X = (ts) => left + ((ts - t0) / span) * (right - left);
    const Y = (v) => bottom - (Math.min(v, yMax) / yMax) * (bottom - top);
    const gap = Math.max(3 * state.interval, 3);

    ctx.setTransform(chart.dpr || 1, 0, 0, chart.dpr || 1, 0, 0);
    ctx.clearRect(0, 0, w, h);
    ctx.font = "10px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
    ctx.lineWidth = 1;

    // grid: four bands, labelled at 0, half and the top
    ctx.strokeStyle = pal.grid;
    ctx.fillStyle = pal.muted;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let k = 0; k <= 4; k += 1) {
      const v = (yMax * k) / 4;
      const y = Math.round(Y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(left, y);
      ctx.lineTo(right, y);
      ctx.stroke();
      if (k % 2 === 0 && (any || k === 0)) ctx.fillText(def.axis(v), left - 5, y); // no scale for no data
    }
    // time: a tick every two minutes, on the minute
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let t = Math.ceil(t0 / 120) * 120; t <= t1; t += 120) {
      const x = Math.round(X(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(x, bottom);
      ctx.lineTo(x, bottom + 3);
      ctx.stroke();
      if (x > left + 14 && x < right - 14) ctx.fillText(minuteFormat.format(new Date(t * 1000)), x, bottom + 4);
    }

    ctx.save();
    ctx.beginPath();
    ctx.rect(left, top - 2, right - left, bottom - top + 4);
    ctx.clip();
    ctx.lineJoin = "round";
    for (const s of series) {
      const segments = [];
      let seg = null;
      let prevTs = null;
      for (let i = start; i < rows.length; i += 1) {
        const r = rows[i];
        const v = s.get(r);
        if (v === null || (prevTs !== null && r.ts - prevTs > gap)) seg = null;
        if (v !== null) {
          if (!seg) {
            seg = [];
            segments.push(seg);
          }
          seg.push(X(r.ts), Y(v));
        }
        prevTs = r.ts;
      }
      const color = pal[s.color];
      ctx.strokeStyle = color;
      ctx.fillStyle = color;
      ctx.globalAlpha = s.alpha || 1;
      ctx.lineWidth = s.width || 1.5;
      ctx.setLineDash(s.dash ? [4, 3] : []);
      for (const pts of segments) {
        if (pts.length === 2) {
          ctx.fillRect(pts[0] - 1.5, pts[1] - 1.5, 3, 3); // a lone point between gaps
          continue;
        }
        if (def.fill) {
          ctx.globalAlpha = 0.12;
          ctx.beginPath();
          ctx.moveTo(pts[0], bottom);
          for (let j = 0; j < pts.length; j += 2) ctx.lineTo(pts[j], pts[j + 1]);
          ctx.lineTo(pts[pts.length - 2], bottom);
          ctx.closePath();
          ctx.fill();
          ctx.globalAlpha = s.alpha || 1;
        }
        ctx.beginPath();
        ctx.moveTo(pts[0], pts[1]);
        for (let j = 2; j < pts.length; j += 2) ctx.lineTo(pts[j], pts[j + 1]);
        ctx.stroke();
      }
    }
    ctx.restore();
    ctx.globalAlpha = 1;
    ctx.setLineDash([]);

    if (chart.hover) drawHover(chart, rows, start, X, Y, left, right, top, bottom, t0);
  }

  function drawHover(chart, rows, start, X, Y, left, right, top, bottom, t0) {
    const tip = $("chart-tip");
    const { ctx, def } = chart;
    const hx = chart.hover.x;
    if (hx < left || hx > right || start >= rows.length) {
      tip.hidden = true;
      return;
    }
    const t = t0 + ((hx - left) / (right - left)) * (chart.span || WINDOW_S);
    let best = -1;
    let bestD = Infinity;
    for (let i = start; i < rows.length; i += 1) {
      const d = Math.abs(rows[i].ts - t);
      if (d < bestD) {
        bestD = d;
        best = i;
      }
    }
    if (best < 0 || rows[best].ts < t0) {
      tip.hidden = true;
      return;
    }
    const row = rows[best];
    const pal = colors();
    const x = Math.round(X(row.ts)) + 0.5;
    ctx.strokeStyle = pal.muted;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    tip.replaceChildren(el("div", "tip-time", fmtClock(row.ts)));
    for (const s of def.series) {
      const v = s.get(row);
      if (v !== null && !s.hidden) {
        ctx.fillStyle = pal[s.color];
        ctx.beginPath();
        ctx.arc(x, Y(v), 3, 0, Math.PI * 2);
        ctx.fill();
      }
      const line = el("div");
      const sw = el("span", "swatch");
      sw.style.background = pal[s.color];
      line.append(sw, s.label + " ", el("b", null, v === null ? "no data" : s.fmt(v)));
      tip.append(line);
    }
    tip.hidden = false;
    const tw = tip.offsetWidth;
    const th = tip.offsetHeight;
    let tx = chart.hover.cx + 14;
    let ty = chart.hover.cy + 14;
    if (tx + tw > window.innerWidth - 8) tx = chart.hover.cx - tw - 14;
    if (ty + th > window.innerHeight - 8) ty = chart.hover.cy - th - 14;
    tip.style.left = tx + "px";
    tip.style.top = ty + "px";
  }

  // The latest figures as text beside each title: what a reader (and a test) takes in.
  function updateValue(chart) {
    const def = chart.def;
    const row = state.rows.length ? state.rows[state.rows.length - 1] : null;
    const shown = def.series;
    const values = shown.map((s) => (row ? s.get(row) : null));
    const texts = values.map((v, i) => (v === null ? "no data" : shown[i].fmt(v)));
    let key = texts.join("|");
    if (def.cores && row) key += "|" + row.cores.length;
    if (key === chart.valueKey) return;
    chart.valueKey = key;
    const out = chart.value;
    let plain;
    if (values.every((v) => v === null)) {
      out.replaceChildren("no data");
      plain = "no data";
    } else if (shown.length === 1) {
      out.replaceChildren(el("b", null, texts[0]));
      plain = texts[0];
    } else {
      const parts = [];
      const plainParts = [];
      shown.forEach((s, i) => {
        if (parts.length) parts.push(" ");
        const k = el("span", "key");
        const sw = el("span", "swatch " + s.color + (s.dash ? " dashed" : ""));
        sw.setAttribute("aria-hidden", "true");
        k.append(sw, s.label + " ", el("b", null, texts[i]));
        parts.push(k);
        plainParts.push(s.label + " " + texts[i]);
      });
      if (def.cores && row && row.cores.length) {
        parts.push(" ", el("span", "key", row.cores.length + (row.cores.length === 1 ? " core" : " cores")));
        plainParts.push(row.cores.length + " cores");
      }
      if (def.suffix) parts.push(def.suffix);
      out.replaceChildren(...parts);
      plain = plainParts.join(", ") + (def.suffix || "");
    }
    chart.canvas.setAttribute("aria-label", chart.label + "; latest: " + plain);
  }

  // -- messages --------------------------------------------------------------------------

  function onHello(h) {
    backoff = BACKOFF_MIN_MS;
    const incarnation = [h.swarm_id, h.started_at, h.run_id, h.live].join("|");
    // A restarted service numbers on from above its predecessor's messages, so the cursor
    // stays good across it. Numbers that went back (another swarm's run, a replay) mean
    // everything this server has is new here: read it all from the start.
    const restarted = typeof h.seq === "number" && h.seq < dashboard.lastSeq;
    state.incarnation = incarnation;
    if (restarted && dashboard.lastSeq > 0) {
      dashboard.lastSeq = 0;
      state.prevTotals = null;
      reopen();
      return;
    }
    state.live = h.live !== false;
    // A service on its way out still answers, with nothing more to say: it has ended.
    state.ended = state.live && h.state === "stopped";
    state.replayDone = false;
    state.interval = num(h.interval_s) || 1;
    $("swarm-id").textContent = h.swarm_id || "…";
    document.title = (h.swarm_id || "swarm") + " · swarmperf dashboard";
    setFact("state", h.state);
    setFact("strategy", h.strategy);
    setFact("backend", h.backend);
    const run = $("run");
    run.textContent = h.run ? String(h.run) : "";
    run.parentElement.hidden = !h.run;
    setStatus(state.ended ? "ended" : state.live ? "live" : "replay");
    showTokenForm(false, false);
  }

  function setFact(id, value) {
    if (value === undefined || value === null) return;
    const e = $(id);
    const text = String(value);
    if (e.textContent !== text) e.textContent = text;
    if (id === "state") e.dataset.state = text;
  }

  function receive(text) {
    let msg;
    try {
      msg = JSON.parse(text);
    } catch (e) {
      return;
    }
    if (!msg || typeof msg !== "object") return;
    dashboard.messages += 1;
    if (msg.type === "hello") {
      onHello(msg);
      return;
    }
    if (typeof msg.seq === "number") {
      if (msg.seq <= dashboard.lastSeq) return; // seen before a reconnect
      dashboard.lastSeq = msg.seq;
    }
    const ts = num(msg.ts);
    if (ts !== null) state.lastTs = ts;
    switch (msg.type) {
      case "metrics":
        onMetrics(msg);
        break;
      case "event":
        onEvent(msg);
        break;
      case "decision":
        onDecision(msg);
        break;
      case "end":
        onEnd(msg);
        break;
      default:
        break;
    }
    scheduleRender();
  }

  function onMetrics(m) {
    const ts = num(m.ts);
    if (ts === null) return;
    const x = m.metrics && typeof m.metrics === "object" ? m.metrics : {};
    const g = (k) => num(x[k]);
    let q = m.queue && m.queue.by_priority && typeof m.queue.by_priority === "object" ? m.queue.by_priority : null;
    if (q && Object.keys(q).length === 0) q = null; // not known (a replay): no data, not zero
    const qv = (k) => (q ? num(q[k]) ?? 0 : null);
    const totals = m.totals && typeof m.totals === "object" ? m.totals : null;
    // Totals count since start; a chart wants each interval's share. A long silence (more
    // than a few intervals) makes no fair share of anything: a gap.
    const steady = state.prevTotalsTs !== null && ts - state.prevTotalsTs <= Math.max(3 * state.interval, 3);
    const diff = (name) => {
      const cur = totals ? num(totals[name]) : null;
      const prev = state.prevTotals ? num(state.prevTotals[name]) : null;
      if (cur === null || prev === null || !steady) return null;
      return cur >= prev ? cur - prev : cur; // a restarted service counts from zero again
    };
    const cores = [];
    for (let i = 0; ; i += 1) {
      const k = "system.cpu" + i + "_percent";
      if (!(k in x)) break;
      cores.push(num(x[k]));
    }
    let cpuMax = null;
    for (const c of cores) if (c !== null && (cpuMax === null || c > cpuMax)) cpuMax = c;
    const row = {
      ts,
      throughput: g("swarm.throughput_per_s"),
      p50: g("swarm.latency.p50"),
      p90: g("swarm.latency.p90"),
      p99: g("swarm.latency.p99"),
      wait50: g("swarm.wait.p50"),
      wait99: g("swarm.wait.p99"),
      svc50: g("swarm.service.p50"),
      svc99: g("swarm.service.p99"),
      errors: g("swarm.error_rate") === null ? null : g("swarm.error_rate") * 100, // a share: shown in %
      qCritical: qv("critical"),
      qHigh: qv("high"),
      qNormal: qv("normal"),
      qLow: qv("low"),
      rejected: diff("rejected"),
      shed: diff("shed"),
      cpu: g("system.cpu_percent"),
      cpuMax,
      cores,
      memory: g("system.memory_percent"),
      sent: g("system.net_sent_bytes_per_s"),
      recv: g("system.net_recv_bytes_per_s"),
    };
    if (totals) {
      state.prevTotals = totals;
      state.prevTotalsTs = ts;
    }
    const rows = state.rows;
    if (rows.length && ts < rows[rows.length - 1].ts) rows.length = 0; // another timeline
    rows.push(row);
    let drop = 0;
    while (drop < rows.length && rows[drop].ts < ts - WINDOW_S) drop += 1;
    drop = Math.max(drop, rows.length - MAX_ROWS);
    if (drop > 0) rows.splice(0, drop);
    state.latest = m;
    trackAlerts(Array.isArray(m.alerts) ? m.alerts : [], ts);
  }

  function trackAlerts(list, ts) {
    const seen = new Set();
    const counts = new Map();
    for (const a of list) {
      if (!a || typeof a !== "object" || !a.name) continue;
      const name = String(a.name);
      // two alerts may share a name (one rule, several subjects): each keeps its own row
      const n = (counts.get(name) || 0) + 1;
      counts.set(name, n);
      const key = n === 1 ? name : name + "#" + n;
      seen.add(key);
      const status = a.status === "firing" || a.status === "pending" ? a.status : "resolved";
      const entry = state.alerts.get(key) || { name, resolvedAt: null };
      entry.alert = a;
      if (status === "resolved" && entry.status !== "resolved") entry.resolvedAt = ts;
      if (status !== "resolved") entry.resolvedAt = null;
      entry.status = status;
      state.alerts.set(key, entry);
    }
    for (const [key, entry] of state.alerts) {
      if (!seen.has(key) && entry.status !== "resolved") {
        entry.status = "resolved"; // gone from the swarm's list: it no longer holds
        entry.resolvedAt = ts;
      }
      if (entry.status === "resolved" && ts - entry.resolvedAt > RESOLVED_KEEP_S) state.alerts.delete(key);
    }
    state.alertsDirty = true;
  }

  function onEvent(m) {
    state.pendingEvents.push(m);
    if (state.pendingEvents.length > MAX_EVENTS) state.pendingEvents.splice(0, state.pendingEvents.length - MAX_EVENTS);
  }

  function onDecision(m) {
    if (m.id === undefined || m.id === null) return;
    state.pendingDecisions.set(String(m.id), m);
  }

  function onEnd() {
    state.ended = true;
    if (state.live === false) state.replayDone = true;
    setStatus("ended");
  }

  // -- rendering -------------------------------------------------------------------------

  let renderQueued = false;
  let lastRender = 0;
  let renderTimer = 0;
  let renderFrame = 0;
  const RENDER_EVERY_MS = 250; // at most four draws a second while a backlog pours in

  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    // One draw for however many messages arrive meanwhile (a backlog comes all at once,
    // and drawing each would hold up reading the rest); the timer covers a hidden tab,
    // where frames do not run.
    const wait = Math.max(0, lastRender + RENDER_EVERY_MS - performance.now());
    renderTimer = setTimeout(() => {
      renderFrame = requestAnimationFrame(render);
      renderTimer = setTimeout(render, 250);
    }, wait);
  }

  function render() {
    if (!renderQueued) return;
    renderQueued = false;
    clearTimeout(renderTimer);
    cancelAnimationFrame(renderFrame);
    lastRender = performance.now();
    if (state.lastTs !== null) setTime($("last-message"), state.lastTs);
    const m = state.latest;
    if (m) {
      setFact("state", m.state);
      setFact("strategy", m.strategy);
      renderAgents(Array.isArray(m.agents) ? m.agents : []);
    }
    for (const c of charts) {
      updateValue(c);
      drawChart(c);
    }
    if (state.alertsDirty) renderAlerts();
    if (state.pendingEvents.length) renderEvents();
    if (state.pendingDecisions.size) renderDecisions();
  }

  // agents: cards, or a heat map when there are many

  const agentEls = new Map();

  function breakerOf(a) {
    const b = typeof a.breaker === "string" ? a.breaker.replace("-", "_") : null;
    return b === "closed" || b === "half_open" || b === "open" ? b : "none";
  }

  function pct(u) {
    return u === null ? null : Math.max(0, Math.min(100, u * 100));
  }

  function makeCard(id) {
    const card = el("article", "agent");
    card.id = "agent-" + id;
    const title = el("h3", "mono", id);
    title.title = id;
    const head = el("div", "agent-badges");
    const status = el("span", "badge");
    status.hidden = true;
    const breaker = el("span", "badge");
    head.append(breaker, status);
    const util = el("div", "util");
    const bar = el("div", "util-bar");
    bar.setAttribute("aria-hidden", "true");
    const fill = el("div", "util-fill");
    bar.append(fill);
    const utilText = el("span", "util-text");
    util.append(bar, utilText);
    const dl = el("dl");
    const field = (label) => {
      const dd = el("dd");
      dl.append(el("dt", null, label), dd);
      return dd;
    };
    const parts = {
      status,
      breaker,
      fill,
      utilText,
      speed: field("speed"),
      inflight: field("in flight"),
      completed: field("completed"),
      failed: field("failed"),
    };
    card.append(title, head, util, dl);
    card._parts = parts;
    return card;
  }

  function setText(e, text) {
    if (e.textContent !== text) e.textContent = text;
  }

  function updateCard(card, a) {
    const p = card._parts;
    const breaker = breakerOf(a);
    const alive = a.alive !== false;
    card.dataset.breaker = breaker;
    card.dataset.alive = alive ? "true" : "false";
    const u = pct(num(a.utilization));
    p.fill.style.width = (u === null ? 0 : u) + "%";
    p.fill.classList.toggle("high", u !== null && u >= 90);
    setText(p.utilText, u === null ? "no data" : fmtNumber(u, 0) + " %");
    p.breaker.className = "badge " + (breaker === "none" ? "" : breaker);
    setText(p.breaker, breaker === "none" ? "no breaker" : "breaker " + breaker.replace("_", " "));
    const status = !alive ? "lost" : a.paused ? "paused" : "";
    p.status.hidden = !status;
    p.status.className = "badge " + (alive ? "warn" : "bad");
    setText(p.status, status);
    const speed = num(a.speed);
    const weight = num(a.weight);
    setText(p.speed, (speed === null ? "no data" : sig3(speed)) + (weight === null ? "" : " (weight " + sig3(weight) + ")"));
    const inflight = num(a.in_flight);
    const slots = num(a.slots);
    setText(p.inflight, (inflight === null ? "–" : fmtInt(inflight)) + " / " + (slots === null ? "–" : fmtInt(slots)));
    setText(p.completed, num(a.completed) === null ? "–" : fmtInt(a.completed));
    setText(p.failed, num(a.failed) === null ? "–" : fmtInt(a.failed));
  }

  function makeCell(id) {
    const cell = el("div", "cell");
    cell.id = "agent-" + id;
    cell.setAttribute("role", "img");
    return cell;
  }

  function updateCell(cell, a, id) {
    const breaker = breakerOf(a);
    const alive = a.alive !== false;
    cell.dataset.breaker = breaker;
    cell.dataset.alive = alive ? "true" : "false";
    const u = pct(num(a.utilization));
    setText(cell, u === null ? "–" : fmtNumber(u, 0));
    cell.style.backgroundColor =
      u === null ? "" : "color-mix(in srgb, var(--heat-hi) " + u.toFixed(1) + "%, var(--heat-lo))";
    const speed = num(a.speed);
    const tip =
      id +
      ": utilisation " + (u === null ? "no data" : fmtNumber(u, 0) + " %") +
      ", breaker " + (breaker === "none" ? "none" : breaker.replace("_", " ")) +
      ", " + (num(a.in_flight) ?? "–") + " / " + (num(a.slots) ?? "–") + " in flight" +
      ", speed " + (speed === null ? "no data" : sig3(speed)) +
      ", completed " + (num(a.completed) === null ? "–" : fmtInt(a.completed)) +
      ", failed " + (num(a.failed) === null ? "–" : fmtInt(a.failed)) +
      (alive ? (a.paused ? ", paused" : "") : ", lost");
    if (cell.title !== tip) {
      cell.title = tip;
      cell.setAttribute("aria-label", "Agent " + tip);
    }
  }

  function renderAgents(list) {
    const box = $("agents");
    const heat = list.length > CARDS_UP_TO;
    if (heat !== state.heatMode) {
      box.replaceChildren();
      agentEls.clear();
      state.heatMode = heat;
      box.classList.toggle("heat", heat);
      $("heat-legend").hidden = !heat;
    }
    const seen = new Set();
    let open = 0;
    let lost = 0;
    let index = 0;
    for (const a of list) {
      if (!a || typeof a !== "object" || a.id === undefined || a.id === null) continue;
      const id = String(a.id);
      if (seen.has(id)) continue;
      seen.add(id);
      let node = agentEls.get(id);
      if (!node) {
        node = heat ? makeCell(id) : makeCard(id);
        agentEls.set(id, node);
      }
      if (heat) updateCell(node, a, id);
      else updateCard(node, a);
      if (box.children[index] !== node) box.insertBefore(node, box.children[index] || null);
      index += 1;
      if (breakerOf(a) === "open") open += 1;
      if (a.alive === false) lost += 1;
    }
    for (const [id, node] of agentEls) {
      if (!seen.has(id)) {
        node.remove();
        agentEls.delete(id);
      }
    }
    $("agents-empty").hidden = seen.size > 0;
    setText($("agent-count"), String(seen.size));
    let summary = seen.size + (seen.size === 1 ? " agent" : " agents");
    if (open) summary += " · " + open + " breaker" + (open === 1 ? "" : "s") + " open";
    if (lost) summary += " · " + lost + " lost";
    setText($("agents-summary"), summary);
  }

  // alerts

  const STATUS_ORDER = { firing: 0, pending: 1, resolved: 2 };
  const SEVERITY_ORDER = { critical: 0, page: 0, error: 1, warning: 2, warn: 2, info: 3 };
  let alertsKey = "";

  function renderAlerts() {
    state.alertsDirty = false;
    const entries = Array.from(state.alerts.entries()).sort((x, y) => {
      const a = x[1];
      const b = y[1];
      return (
        STATUS_ORDER[a.status] - STATUS_ORDER[b.status] ||
        (SEVERITY_ORDER[a.alert.severity] ?? 9) - (SEVERITY_ORDER[b.alert.severity] ?? 9) ||
        x[0].localeCompare(y[0])
      );
    });
    const texts = entries.map(([key, e]) => {
      const v = num(e.alert.value);
      return [key, e.status, e.alert.severity || "", e.alert.summary || "", v === null ? "" : sig3(v)];
    });
    const key = JSON.stringify(texts);
    if (key === alertsKey) return; // unchanged: no churn for screen readers
    alertsKey = key;
    const items = entries.map(([, e], i) => {
      const [, status, severity, summary, value] = texts[i];
      const li = el("li");
      li.dataset.alert = e.name;
      li.dataset.state = status;
      const badge = el("span", "badge " + (status === "firing" ? "bad" : status === "pending" ? "warn" : ""), status);
      const name = el("span", "alert-name", e.name);
      li.append(badge, name, el("span", "alert-severity", severity));
      const more = [summary, value && "value " + value].filter(Boolean).join(" · ");
      if (more) li.append(el("span", "alert-summary", more));
      return li;
    });
    $("alerts").replaceChildren(...items);
    $("alerts-empty").hidden = items.length > 0;
  }

  // events

  const KIND_TONE = {
    "breaker-open": "bad",
    "agent-lost": "bad",
    "agent-given-up": "bad",
    "agent-restart-failed": "bad",
    "monitor-tick-failed": "bad",
    "monitor-store-failed": "bad",
    "monitor-observer-failed": "bad",
    "breaker-half-open": "warn",
    "agent-paused": "warn",
    "agent-probation": "warn",
    "anomaly": "warn",
    "shed": "warn",
    "rate-limited": "warn",
    "events-dropped": "warn",
    "breaker-closed": "good",
    "agent-resumed": "good",
    "agent-reinstated": "good",
    "agent-restarted": "good",
    "strategy-changed": "info",
  };

  function fmtDetailValue(v) {
    if (typeof v === "number") return Number.isInteger(v) ? fmtInt(v) : sig3(v);
    if (typeof v === "string") return v;
    if (v === null || v === undefined) return "none";
    if (typeof v === "boolean") return v ? "yes" : "no";
    try {
      return JSON.stringify(v);
    } catch (e) {
      return String(v);
    }
  }

  function summarise(kind, detail) {
    if (!detail || typeof detail !== "object") return "";
    if (kind === "events-dropped") {
      const n = num(detail.count);
      return (n === null ? "some" : fmtInt(n)) + " more events in that interval were not sent";
    }
    const text = Object.entries(detail)
      .map(([k, v]) => {
        // the units in a name (cooldown_s) read better after the value (cooldown 10 s)
        const unit = /_(s|ms|per_s|bytes)$/.exec(k);
        if (unit && typeof v === "number") {
          const name = k.slice(0, -unit[0].length).replace(/_/g, " ");
          if (unit[1] === "s") return name + " " + fmtDuration(v);
          if (unit[1] === "ms") return name + " " + fmtDuration(v / 1000);
          if (unit[1] === "per_s") return name + " " + sig3(v) + "/s";
          return name + " " + fmtShortBytes(v);
        }
        return k.replace(/_/g, " ") + " " + fmtDetailValue(v);
      })
      .join(", ");
    return text.length > 160 ? text.slice(0, 157) + "…" : text;
  }

  function renderEvents() {
    const list = $("events");
    const batch = state.pendingEvents;
    state.pendingEvents = [];
    const now = Date.now() / 1000;
    const frag = document.createDocumentFragment();
    for (let i = batch.length - 1; i >= 0; i -= 1) {
      const m = batch[i];
      const kind = typeof m.kind === "string" ? m.kind : "event";
      const li = el("li");
      li.dataset.kind = kind;
      const ts = num(m.ts);
      if (ts !== null && Math.abs(now - ts) < 5) li.classList.add("fresh");
      const time = el("time");
      if (ts !== null) setTime(time, ts);
      const subject = el("span", "event-subject", m.subject === undefined || m.subject === null ? "" : String(m.subject));
      subject.title = subject.textContent;
      li.append(time, el("span", "badge " + (KIND_TONE[kind] || ""), kind), subject);
      const detail = summarise(kind, m.detail);
      if (detail) li.append(el("span", "event-detail", detail));
      frag.append(li);
    }
    list.insertBefore(frag, list.firstChild);
    while (list.children.length > MAX_EVENTS) list.lastChild.remove();
    $("events-empty").hidden = list.children.length > 0;
  }

  // decisions

  const FIGURES = [
    { label: "throughput", key: "throughput_per_s", fmt: (v) => fmtCount(v) + "/s", better: 1 },
    { label: "p99 latency", key: "latency_p99_s", fmt: fmtDuration, better: -1 },
    { label: "error rate", key: "error_rate", fmt: (v) => fmtPercent(v * 100), better: -1 },
    { label: "agents", key: "agents", fmt: fmtInt, better: 0 },
  ];

  function figureTable(d) {
    const before = d.before && typeof d.before === "object" ? d.before : null;
    const after = d.after && typeof d.after === "object" ? d.after : null;
    const table = el("table", "figures");
    const head = el("tr");
    for (const h of ["", "before", "after", "change"]) {
      const th = el("th", null, h);
      th.scope = "col";
      head.append(th);
    }
    table.append(el("thead"), el("tbody"));
    table.tHead.append(head);
    for (const f of FIGURES) {
      let b = before ? num(before[f.key]) : null;
      let a = after ? num(after[f.key]) : null;
      if (f.key === "agents") {
        if (b === null) b = num(d.agents_before);
        if (a === null && after) a = num(d.agents_after);
      }
      if (b === null && a === null) continue;
      const tr = el("tr");
      const th = el("th", null, f.label);
      th.scope = "row";
      const change = el("td", null, "–");
      if (a !== null && b !== null) {
        if (f.better === 0) {
          const d2 = a - b;
          change.textContent = d2 === 0 ? "±0" : (d2 > 0 ? "+" : "−") + fmtInt(Math.abs(d2));
        } else if (b !== 0) {
          const rel = (a - b) / Math.abs(b);
          change.textContent = (rel >= 0 ? "+" : "−") + fmtNumber(Math.abs(rel * 100), 1) + " %";
          if (Math.abs(rel) >= 0.02) change.className = rel * f.better > 0 ? "better" : "worse";
        }
      }
      tr.append(th, el("td", null, b === null ? "no data" : f.fmt(b)), el("td", null, after ? (a === null ? "no data" : f.fmt(a)) : "…"), change);
      table.tBodies[0].append(tr);
    }
    return table.tBodies[0].children.length ? table : null;
  }

  function fillDecision(li, m) {
    const d = m.decision && typeof m.decision === "object" ? m.decision : {};
    const head = el("div", "decision-head");
    head.append(el("span", "badge info", String(m.kind || "decision")));
    const time = el("time");
    // when it was decided: its own stamp, else when this page first heard of it (an update
    // with the after-figures comes later)
    if (!li.dataset.seen && num(m.ts) !== null) li.dataset.seen = String(m.ts);
    const at = num(m.created_at) ?? num(Number(li.dataset.seen));
    if (at !== null) setTime(time, at);
    head.append(time, el("span", "subtle", "#" + m.id));
    const parts = [head, el("p", "decision-reason", m.reason ? String(m.reason) : "")];
    const table = figureTable(d);
    if (table) {
      parts.push(table);
      if (!(d.after && typeof d.after === "object")) {
        const obs = num(d.observe_s);
        parts.push(el("p", "measuring", "after: measuring…" + (obs ? " (" + sig3(obs) + " s)" : "")));
      }
    }
    li.replaceChildren(...parts);
  }

  function renderDecisions() {
    const list = $("decisions");
    for (const [id, m] of state.pendingDecisions) {
      let li = null;
      for (const child of list.children) {
        if (child.dataset.decision === id) {
          li = child;
          break;
        }
      }
      if (!li) {
        li = el("li");
        li.dataset.decision = id;
        // newest first, by number where the ids are numbers
        const n = Number(id);
        let before = null;
        for (const child of list.children) {
          const c = Number(child.dataset.decision);
          if (!Number.isNaN(n) && !Number.isNaN(c) && c < n) {
            before = child;
            break;
          }
        }
        if (!before && Number.isNaN(n)) before = list.firstChild;
        list.insertBefore(li, before);
      }
      fillDecision(li, m);
    }
    state.pendingDecisions.clear();
    while (list.children.length > MAX_DECISIONS) list.lastChild.remove();
    $("decisions-empty").hidden = list.children.length > 0;
  }

  // -- connection ------------------------------------------------------------------------

  let socket = null;
  let backoff = BACKOFF_MIN_MS;
  let retryTimer = null;

  function setStatus(status) {
    dashboard.status = status;
    const c = $("connection");
    if (c.textContent !== status) c.textContent = status;
    c.dataset.status = status;
  }

  function readToken() {
    const params = new URLSearchParams(location.hash.replace(/^#/, ""));
    const given = params.get("token");
    if (given !== null) {
      // The fragment never reaches a server; out of the address bar, it stays out of
      // bookmarks, screenshots and shared links too.
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
      saveToken(given);
      return;
    }
    try {
      state.token = sessionStorage.getItem(TOKEN_KEY);
    } catch (e) {
      state.token = null;
    }
  }

  function saveToken(token) {
    state.token = token;
    try {
      if (token === null) sessionStorage.removeItem(TOKEN_KEY);
      else sessionStorage.setItem(TOKEN_KEY, token);
    } catch (e) {
      // no storage: the token lasts as long as the page
    }
  }

  function showTokenForm(show, refused) {
    const form = $("token-form");
    form.hidden = !show;
    $("token-error").hidden = !refused;
    if (show) $("token-input").focus();
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = null;
    const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/v1/live";
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ token: state.token, after: dashboard.lastSeq > 0 ? dashboard.lastSeq : null }));
    };
    ws.onmessage = (e) => {
      if (ws === socket) receive(e.data);
    };
    ws.onerror = () => {
      // a close event follows, and says what to do
    };
    ws.onclose = (e) => {
      if (ws !== socket) return;
      socket = null;
      closed(e);
    };
  }

  // Close this connection and open another at once (a restarted server: read it all).
  function reopen() {
    const old = socket;
    socket = null;
    if (old) old.close(1000);
    connect();
  }

  function closed(e) {
    if (e.code === 4401) {
      const hadToken = state.token !== null && state.token !== "";
      saveToken(null);
      setStatus("unauthorised");
      showTokenForm(true, hadToken);
      return;
    }
    if (state.replayDone) return; // the replay is over: nothing more to read
    if (!state.ended) setStatus("reconnecting");
    // A live swarm that ended may be started again: keep looking for it, quietly.
    scheduleReconnect();
  }

  function scheduleReconnect() {
    clearTimeout(retryTimer);
    const wait = backoff;
    backoff = Math.min(backoff * 2, BACKOFF_MAX_MS);
    retryTimer = setTimeout(connect, wait);
  }

  // A live feed that goes quiet for several intervals shows it, before any reconnect.
  function watchStaleness() {
    const last = $("last-message");
    const stale =
      dashboard.status === "live" && state.lastTs !== null && Date.now() / 1000 - state.lastTs > Math.max(5 * state.interval, 5);
    last.classList.toggle("stale", stale);
    last.parentElement.title = stale ? "No message for a while" : "";
  }

  // -- start -----------------------------------------------------------------------------

  function start() {
    $("theme-toggle").addEventListener("click", toggleTheme);
    darkQuery.addEventListener("change", applyTheme);
    setupCharts();
    applyTheme();
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const value = $("token-input").value.trim();
      if (!value) return;
      $("token-input").value = "";
      saveToken(value);
      showTokenForm(false, false);
      setStatus("connecting");
      backoff = BACKOFF_MIN_MS;
      if (socket) reopen();
      else connect();
    });
    readToken();
    setStatus("connecting");
    // Without a token the server may still let a loopback page in; if not, it says 4401 and
    // the form asks for one.
    connect();
    setInterval(watchStaleness, 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
