// k.lossCurveSvg: a training-loss curve as a standalone SVG (no plotting library): the raw
// loss per step in light grey, a moving average on top, epoch boundaries dashed, axes with a
// few round ticks. `kiln train` writes one beside its checkpoints.

import { strictOptions } from "./options.ts";

export interface LossCurveOptions {
  readonly title?: string;
  /** Draws a dashed line at every epoch boundary. */
  readonly stepsPerEpoch?: number;
  readonly width?: number;
  readonly height?: number;
  /** Steps averaged in the smoothed line; default about 2% of the run. */
  readonly smoothing?: number;
}

const MARGIN = { left: 56, right: 16, top: 32, bottom: 40 };

/** Moving average over a trailing window of `window` steps. */
export function movingAverage(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  for (let i = 0; i < values.length; i++) {
    sum += values[i]!;
    if (i >= window) sum -= values[i - window]!;
    out.push(sum / Math.min(i + 1, window));
  }
  return out;
}

/** Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten. */
export function niceTicks(low: number, high: number, count = 5): number[] {
  if (!(high > low)) return [low];
  const rough = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough)!;
  const ticks: number[] = [];
  for (let t = Math.ceil(low / step) * step; t <= high + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

const escapeXml = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** The SVG document (a string) of the loss per step. */
export function lossCurveSvg(losses: readonly number[], options?: LossCurveOptions): string {
  const opts = strictOptions<LossCurveOptions>("k.lossCurveSvg", options, { title: true, stepsPerEpoch: true, width: true, height: true, smoothing: true });
  const width = opts.width ?? 720;
  const height = opts.height ?? 360;
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const finite = losses.filter((v) => Number.isFinite(v));
  const yMax = finite.length > 0 ? Math.max(...finite) : 1;
  const yMin = Math.min(0, ...finite);
  const steps = Math.max(losses.length, 2);
  const px = (step: number): number => MARGIN.left + (plotW * step) / (steps - 1);
  const py = (v: number): number => MARGIN.top + plotH * (1 - (v - yMin) / (yMax - yMin || 1));
  const path = (values: readonly number[]): string =>
    values.map((v, i) => (Number.isFinite(v) ? `${i === 0 ? "M" : "L"}${px(i).toFixed(1)},${py(v).toFixed(1)}` : "")).join("");
  const window = opts.smoothing ?? Math.max(1, Math.round(losses.length / 50));
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
  ];
  if (opts.title) parts.push(`<text x="${width / 2}" y="18" text-anchor="middle" font-size="13">${escapeXml(opts.title)}</text>`);
  for (const t of niceTicks(yMin, yMax)) {
    parts.push(`<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${py(t).toFixed(1)}" y2="${py(t).toFixed(1)}" stroke="#eee"/>`);
    parts.push(`<text x="${MARGIN.left - 6}" y="${(py(t) + 4).toFixed(1)}" text-anchor="end">${t}</text>`);
  }
  for (const t of niceTicks(0, steps - 1)) parts.push(`<text x="${px(t).toFixed(1)}" y="${height - MARGIN.bottom + 16}" text-anchor="middle">${t}</text>`);
  if (opts.stepsPerEpoch !== undefined && opts.stepsPerEpoch > 0)
    for (let e = opts.stepsPerEpoch; e < losses.length; e += opts.stepsPerEpoch)
      parts.push(
        `<line x1="${px(e).toFixed(1)}" x2="${px(e).toFixed(1)}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="#999" stroke-dasharray="4 4"/>`,
      );
  parts.push(
    `<line x1="${MARGIN.left}" x2="${MARGIN.left}" y1="${MARGIN.top}" y2="${MARGIN.top + plotH}" stroke="black"/>`,
    `<line x1="${MARGIN.left}" x2="${width - MARGIN.right}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH}" stroke="black"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${height - 6}" text-anchor="middle">step</text>`,
    `<text x="14" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 14 ${MARGIN.top + plotH / 2})">loss</text>`,
    `<path d="${path(losses)}" fill="none" stroke="#bbb" stroke-width="1"/>`,
    `<path d="${path(movingAverage(losses, window))}" fill="none" stroke="#1f77b4" stroke-width="2"/>`,
    "</svg>",
    "",
  );
  return parts.join("\n");
}
