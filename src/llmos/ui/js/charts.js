// A small line chart on <canvas>, auto y-scale, legend. Two x axes: time (a rolling window
// ending now, fed with set/push) or a value such as a training step (fed with setXY).
// After each draw the canvas's data-points attribute holds the points drawn per series
// ("12,3"), so a test (or a curious user) can read what the chart shows.
const PALETTE = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a"];
const MARKERS_UP_TO = 60; // on a value axis, series this short get a dot on every point

export class LineChart {
  constructor(canvas, { series, unit = "", windowS = 300, format = null, x = "time", xLabel = "" }) {
    this.canvas = canvas;
    this.series = series.map((name, i) => ({ name, color: PALETTE[i % PALETTE.length], points: [] }));
    this.unit = unit;
    this.windowS = windowS;
    this.format = format;
    this.x = x;
    this.xLabel = xLabel;
    this.xMax = 0;
    this.resize = () => this.draw();
    window.addEventListener("resize", this.resize);
  }

  destroy() {
    window.removeEventListener("resize", this.resize);
  }

  // Replace every series: points is [[t (ms), [one value (or null for a gap) per series]], ...].
  set(points) {
    this.series.forEach((s, i) => {
      s.points = points.map(([t, values]) => [t, values[i] ?? null]);
    });
    this.draw();
  }

  // values: one number (or null for a gap) per series, at time t (ms).
  push(t, values) {
    values.forEach((v, i) => {
      const pts = this.series[i].points;
      pts.push([t, v]);
      while (pts.length && pts[0][0] < t - this.windowS * 1000) pts.shift();
    });
    this.draw();
  }

  // Value axis: one list of [x, y] per series (sorted by x; y null for a gap). The axis runs
  // from 0 to the largest x, or to xMax when that is larger (a job's total steps).
  setXY(perSeries, { xMax = 0 } = {}) {
    this.series.forEach((s, i) => {
      s.points = perSeries[i] || [];
    });
    this.xMax = xMax;
    this.draw();
  }

  domain() {
    if (this.x === "time") {
      const x1 = Date.now();
      return [x1 - this.windowS * 1000, x1];
    }
    let x1 = this.xMax || 0;
    for (const s of this.series) for (const [x] of s.points) if (x > x1) x1 = x;
    return [0, x1 || 1];
  }

  draw() {
    const c = this.canvas;
    const dpr = window.devicePixelRatio || 1;
    const w = c.clientWidth || 400;
    const hgt = c.clientHeight || 180;
    if (c.width !== Math.round(w * dpr) || c.height !== Math.round(hgt * dpr)) {
      c.width = Math.round(w * dpr);
      c.height = Math.round(hgt * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, hgt);
    const pad = { l: 52, r: 12, t: 24, b: 22 };
    const pw = w - pad.l - pad.r;
    const ph = hgt - pad.t - pad.b;
    const [x0, x1] = this.domain();
    const visible = this.series.map((s) => s.points.filter(([x]) => x >= x0 && x <= x1));
    let max = 0;
    for (const pts of visible) for (const [, v] of pts) if (v !== null && v > max) max = v;
    max = niceCeil(max || 1);
    const fmt = this.format || ((v) => String(Number(v.toFixed(3))));
    const styles = getComputedStyle(c);
    const ink = styles.getPropertyValue("--chart-ink").trim() || "#666";
    const grid = styles.getPropertyValue("--chart-grid").trim() || "#e5e7eb";
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i += 1) {
      const y = pad.t + ph - (ph * i) / 4;
      g.strokeStyle = grid;
      g.beginPath();
      g.moveTo(pad.l, y);
      g.lineTo(pad.l + pw, y);
      g.stroke();
      g.fillStyle = ink;
      g.textAlign = "right";
      g.textBaseline = "middle";
      g.fillText(`${fmt((max * i) / 4)}${this.unit}`, pad.l - 6, y);
    }
    const px = (x) => pad.l + (pw * (x - x0)) / (x1 - x0);
    g.textAlign = "center";
    g.textBaseline = "top";
    if (this.x === "time") {
      for (let m = 0; m <= this.windowS / 60; m += 1) {
        g.fillText(m === 0 ? "now" : `-${m}m`, pad.l + pw - (pw * m * 60) / this.windowS, pad.t + ph + 5);
      }
    } else {
      const tick = Math.max(1, Math.ceil(niceCeil((x1 - x0) / 6)));
      for (let x = x0; x <= x1; x += tick) g.fillText(String(x), px(x), pad.t + ph + 5);
      if (this.xLabel) {
        g.textAlign = "right";
        g.textBaseline = "middle";
        g.fillText(this.xLabel, pad.l + pw, 12);
      }
    }
    const markers = this.x !== "time";
    this.series.forEach((s, i) => {
      const pts = visible[i];
      const xy = (x, v) => [px(x), pad.t + ph - (ph * v) / max];
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.beginPath();
      pts.forEach(([x, v], k) => {
        if (v === null) return;
        const [cx, cy] = xy(x, v);
        const prev = k > 0 ? pts[k - 1][1] : null;
        if (prev === null) g.moveTo(cx, cy);
        else g.lineTo(cx, cy);
      });
      g.stroke();
      g.fillStyle = s.color;
      const dots = markers && pts.length <= MARKERS_UP_TO;
      pts.forEach(([x, v], k) => {
        if (v === null) return;
        // A point with no neighbour would draw no line: show it as a dot.
        const lonely = (k === 0 || pts[k - 1][1] === null) && (k === pts.length - 1 || pts[k + 1][1] === null);
        if (!lonely && !dots) return;
        const [cx, cy] = xy(x, v);
        g.beginPath();
        g.arc(cx, cy, dots ? 2.5 : 3, 0, 2 * Math.PI);
        g.fill();
      });
      const lx = pad.l + i * 130;
      g.fillStyle = s.color;
      g.fillRect(lx, 7, 10, 10);
      g.fillStyle = ink;
      g.textAlign = "left";
      g.textBaseline = "middle";
      g.fillText(s.name, lx + 14, 12);
    });
    c.dataset.points = visible.map((pts) => pts.filter(([, v]) => v !== null).length).join(",");
  }
}

function niceCeil(x) {
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (x <= m * p) return m * p;
  return 10 * p;
}
