// A small time-series line chart on <canvas>: rolling window, auto y-scale, legend.
const PALETTE = ["#3b5bdb", "#e8590c", "#2b8a3e", "#ae3ec9", "#c92a2a"];

export class LineChart {
  constructor(canvas, { series, unit = "", windowS = 300, format = null }) {
    this.canvas = canvas;
    this.series = series.map((name, i) => ({ name, color: PALETTE[i % PALETTE.length], points: [] }));
    this.unit = unit;
    this.windowS = windowS;
    this.format = format;
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
    const now = Date.now();
    const t0 = now - this.windowS * 1000;
    let max = 0;
    for (const s of this.series) for (const [, v] of s.points) if (v !== null && v > max) max = v;
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
    g.textAlign = "center";
    g.textBaseline = "top";
    for (let m = 0; m <= this.windowS / 60; m += 1) {
      const x = pad.l + pw - (pw * m * 60) / this.windowS;
      g.fillText(m === 0 ? "now" : `-${m}m`, x, pad.t + ph + 5);
    }
    this.series.forEach((s, i) => {
      g.strokeStyle = s.color;
      g.lineWidth = 2;
      g.beginPath();
      const xy = (t, v) => [pad.l + (pw * (t - t0)) / (this.windowS * 1000), pad.t + ph - (ph * v) / max];
      const pts = s.points.filter(([t]) => t >= t0);
      pts.forEach(([t, v], k) => {
        if (v === null) return;
        const [x, y] = xy(t, v);
        const prev = k > 0 ? pts[k - 1][1] : null;
        if (prev === null) g.moveTo(x, y);
        else g.lineTo(x, y);
      });
      g.stroke();
      g.fillStyle = s.color;
      pts.forEach(([t, v], k) => {
        // A point with no neighbour would draw no line: show it as a dot.
        const lonely = v !== null && (k === 0 || pts[k - 1][1] === null) && (k === pts.length - 1 || pts[k + 1][1] === null);
        if (!lonely) return;
        const [x, y] = xy(t, v);
        g.beginPath();
        g.arc(x, y, 3, 0, 2 * Math.PI);
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
  }
}

function niceCeil(x) {
  const p = 10 ** Math.floor(Math.log10(x));
  for (const m of [1, 2, 2.5, 5, 10]) if (x <= m * p) return m * p;
  return 10 * p;
}
