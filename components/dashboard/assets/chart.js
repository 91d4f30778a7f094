// A minimal line chart on a canvas: no library, no build step.

const COLORS = ['#4dabf7', '#69db7c', '#ffa94d', '#f783ac', '#b197fc', '#3bc9db', '#ffd43b'];

/**
 * Draws `series` (`[{label, values}]`, oldest first) scaled to the largest value.
 * @param {HTMLCanvasElement} canvas
 * @param {string} title
 */
export function drawLines(canvas, title, series) {
  const ctx = canvas.getContext('2d');
  const { width: w, height: h } = canvas;
  const pad = { l: 34, r: 8, t: 16, b: 6 };
  ctx.clearRect(0, 0, w, h);
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const n = Math.max(2, ...series.map((s) => s.values.length));
  const x = (i) => pad.l + ((w - pad.l - pad.r) * i) / (n - 1);
  const y = (v) => h - pad.b - ((h - pad.t - pad.b) * v) / max;
  ctx.font = '11px system-ui, sans-serif';
  ctx.fillStyle = '#8b949e';
  ctx.fillText(title, pad.l, 11);
  ctx.fillText(String(Math.round(max)), 2, pad.t + 4);
  ctx.fillText('0', 2, h - pad.b);
  ctx.strokeStyle = '#30363d';
  ctx.beginPath();
  ctx.moveTo(pad.l, y(0));
  ctx.lineTo(w - pad.r, y(0));
  ctx.stroke();
  let legendX = w - pad.r;
  series.forEach((s, k) => {
    const color = COLORS[k % COLORS.length];
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    s.values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
    ctx.stroke();
    const label = `${s.label} ${s.values.length ? Math.round(s.values[s.values.length - 1]) : ''}`;
    legendX -= ctx.measureText(label).width + 14;
    ctx.fillStyle = color;
    ctx.fillText(label, legendX, 11);
  });
}
