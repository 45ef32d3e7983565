// vega-lite spec → SVG text, headless: vega-lite compiles the spec to vega, and a vega View
// with no renderer writes the scenegraph as SVG (View.toSVG needs neither a browser nor a
// canvas). PNG files come from resvg (a Rust SVG renderer shipped as a prebuilt binary
// inside its npm package), loaded lazily so that a platform without its binary only loses
// the PNGs.

import { existsSync } from 'node:fs';
import { parse, View, Warn, type LoggerInterface } from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';

/** Warnings from vega-lite and vega are collected, not printed: the CLI output stays clean. */
function quietLogger(warnings: string[], errors: string[]): LoggerInterface {
  let level = Warn;
  const logger: LoggerInterface = {
    level(l?: number) {
      if (l === undefined) return level;
      level = l;
      return logger;
    },
    error(...args: readonly unknown[]) {
      errors.push(args.map(String).join(' '));
      return logger;
    },
    warn(...args: readonly unknown[]) {
      warnings.push(args.map(String).join(' '));
      return logger;
    },
    info() { return logger; },
    debug() { return logger; },
  } as LoggerInterface;
  return logger;
}

/**
 * Element ids (gradients, clip paths) come from counters global to the vega module, so the
 * same chart rendered twice in one process would get other ids, and two charts inlined in
 * one page could share one. They are renamed in order of appearance with a per-plot prefix.
 */
export function renameIds(svg: string, prefix: string): string {
  const map = new Map<string, string>();
  for (const m of svg.matchAll(/\sid="([^"]+)"/g)) {
    if (!map.has(m[1]!)) map.set(m[1]!, `${prefix}-${map.size + 1}`);
  }
  if (map.size === 0) return svg;
  return svg
    .replace(/(\sid=")([^"]+)"/g, (_, a: string, id: string) => `${a}${map.get(id) ?? id}"`)
    .replace(/url\(#([^)]+)\)/g, (s, id: string) => (map.has(id) ? `url(#${map.get(id)})` : s))
    .replace(/((?:xlink:)?href=")#([^"]+)"/g, (s, a: string, id: string) => (map.has(id) ? `${a}#${map.get(id)}"` : s));
}

export async function renderSvg(spec: TopLevelSpec, idPrefix: string, warnings: string[] = []): Promise<string> {
  const errors: string[] = [];
  const logger = quietLogger(warnings, errors);
  const vg = compile(spec, { logger }).spec;
  const view = new View(parse(vg), { renderer: 'none', logger });
  try {
    const svg = await view.toSVG();
    if (errors.length) throw new Error(`vega could not draw "${idPrefix}": ${errors.join('; ')}`);
    return renameIds(svg, idPrefix);
  } finally {
    view.finalize();
  }
}

type SvgToPng = (svg: string) => Buffer;

/** DejaVu Sans (Debian's fonts-dejavu-core) when present: a fixed font, and no scan of every system font per plot. */
const DEJAVU = ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', '/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf'];

function fontOptions(): { loadSystemFonts: boolean; fontFiles?: string[]; defaultFontFamily: string; sansSerifFamily: string } {
  const family = { defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' };
  return DEJAVU.every((f) => existsSync(f)) ? { loadSystemFonts: false, fontFiles: DEJAVU, ...family } : { loadSystemFonts: true, ...family };
}

let pngRenderer: Promise<SvgToPng | Error> | undefined;

/** An SVG → PNG function (2× scale, white background), or the reason there is none. */
export function loadPngRenderer(): Promise<SvgToPng | Error> {
  pngRenderer ??= import('@resvg/resvg-js').then(
    ({ Resvg }) => (svg: string) =>
      new Resvg(svg, {
        fitTo: { mode: 'zoom', value: 2 },
        background: 'white',
        font: fontOptions(),
      }).render().asPng(),
    (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
  );
  return pngRenderer;
}
