// Shared helpers for the language tests.

import { frontEnd, parseDissect } from '../../src/lang/index.js';
import type { BlockIntervention, Diagnostic, Intervention, ModelShape, SiteOverrideSpec } from '../../src/lang/program.js';

export const FILE = '/virtual/exp/test.dissect';

// vocab 500: attributes' default candidates fit, as on every real model.
export const shape: ModelShape = { layers: 12, heads: 4, vocab: 500 };

/** The header every checked test file needs (model + dataset). */
export const header = [
  'param model = "m.onnx"',
  'model model tokenizer "t.json"',
  'dataset counterfact "facts.json"',
].join('\n');

type ShapeAnswer = ModelShape | { error: string; site?: number };

export interface RunOptions {
  readonly overrides?: Record<string, string>;
  /** The model's shape, or what reading the model answers given the site overrides. */
  readonly shape?: ShapeAnswer | ((sites: readonly SiteOverrideSpec[]) => ShapeAnswer);
}

export function run(source: string, options: RunOptions = {}) {
  const seen: string[] = [];
  const sitesSeen: (readonly SiteOverrideSpec[])[] = [];
  const result = frontEnd(source, FILE, {
    overrides: options.overrides ?? {},
    shapeOf: (p, sites) => {
      seen.push(p);
      sitesSeen.push(sites);
      return typeof options.shape === 'function' ? options.shape(sites) : options.shape ?? shape;
    },
  });
  return { ...result, shapeCalls: seen, sitesSeen };
}

/** The block interventions of a list (the others fail the test's expectations by being left out). */
export function blocks(interventions: readonly Intervention[] | undefined): BlockIntervention[] {
  return (interventions ?? []).filter((i): i is BlockIntervention => i.kind === 'block');
}

/** "line:col severity: message" for each diagnostic, in order. */
export function brief(diagnostics: readonly Diagnostic[]): string[] {
  return diagnostics.map((d) => `${d.span.line}:${d.span.column} ${d.severity === 'warning' ? 'warning: ' : ''}${d.message}`);
}

/** Errors (and warnings) of a checked source. */
export function problems(source: string, options: RunOptions = {}): string[] {
  return brief(run(source, options).diagnostics);
}

/** Errors of a source that only needs to parse. */
export function syntaxProblems(source: string): string[] {
  return brief(parseDissect(source, FILE).diagnostics);
}
