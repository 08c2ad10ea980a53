// Small charts drawn as inline SVG, by hand: no chart library, nothing fetched. Colours come
// from the style sheet's classes (so the dark scheme applies), never from inline styles (the
// CSP forbids them). Each chart is one image to assistive technology, labelled with what it
// shows in words.

const SVG = "http://www.w3.org/2000/svg";

function node(name, attributes = {}, text) {
  const element = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) element.setAttribute(key, String(value));
  if (text !== undefined) element.textContent = text;
  return element;
}

function frame(width, height, label) {
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": label, class: "chart-svg" });
  svg.append(node("title", {}, label));
  return svg;
}

/**
 * A line through `values` (oldest first) over a zero line, with a dot per value classed by
 * `outcomes[i]` ("win", "lose" or "tie"). `labels` are {start, end} under the x axis.
 */
export function lineChart({ values, outcomes, label, labels }) {
  const width = 260;
  const height = 130;
  const pad = { left: 30, right: 8, top: 12, bottom: 24 };
  const svg = frame(width, height, label);
  const top = Math.max(1, ...values);
  const bottom = Math.min(-1, ...values);
  const x = (i) => pad.left + (values.length < 2 ? 0.5 : i / (values.length - 1)) * (width - pad.left - pad.right);
  const y = (v) => pad.top + ((top - v) / (top - bottom)) * (height - pad.top - pad.bottom);
  svg.append(
    node("line", { x1: pad.left, x2: width - pad.right, y1: y(top), y2: y(top), class: "chart-grid" }),
    node("line", { x1: pad.left, x2: width - pad.right, y1: y(bottom), y2: y(bottom), class: "chart-grid" }),
    node("line", { x1: pad.left, x2: width - pad.right, y1: y(0), y2: y(0), class: "chart-zero" }),
    node("text", { x: pad.left - 6, y: y(top) + 4, class: "chart-label", "text-anchor": "end" }, `+${top}`),
    node("text", { x: pad.left - 6, y: y(0) + 4, class: "chart-label", "text-anchor": "end" }, "0"),
    node("text", { x: pad.left - 6, y: y(bottom) + 4, class: "chart-label", "text-anchor": "end" }, String(bottom)),
    node("text", { x: pad.left, y: height - 6, class: "chart-label" }, labels.start),
    node("text", { x: width - pad.right, y: height - 6, class: "chart-label", "text-anchor": "end" }, labels.end),
  );
  const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
  const area = `${x(0).toFixed(1)},${y(0).toFixed(1)} ${points} ${x(values.length - 1).toFixed(1)},${y(0).toFixed(1)}`;
  svg.append(node("polygon", { points: area, class: "chart-area" }), node("polyline", { points, class: "chart-line" }));
  const radius = values.length > 20 ? 3 : 4;
  values.forEach((v, i) => svg.append(node("circle", { cx: x(i), cy: y(v), r: radius, class: `chart-dot ${outcomes[i]}` })));
  return svg;
}

/** Horizontal bars, one per {name, value, className}, scaled to the largest. */
export function barChart({ bars, label }) {
  const width = 260;
  const row = 34;
  const height = bars.length * row + 6;
  const labelWidth = 80;
  const svg = frame(width, height, label);
  const most = Math.max(1, ...bars.map((bar) => bar.value));
  bars.forEach((bar, i) => {
    const y = 4 + i * row;
    const length = ((width - labelWidth - 44) * bar.value) / most;
    svg.append(
      node("text", { x: labelWidth - 8, y: y + 21, class: "chart-label strong", "text-anchor": "end" }, bar.name),
      node("rect", { x: labelWidth, y: y + 5, width: Math.max(2, length), height: row - 12, rx: 6, class: `chart-bar ${bar.className}` }),
      node("text", { x: labelWidth + Math.max(2, length) + 6, y: y + 21, class: "chart-label" }, String(bar.value)),
    );
  });
  return svg;
}
