// The front of the pipeline: a .dissect file read, parsed and checked against its model, planned,
// and the variants it compiles; the facts a run selects. `check` stops here; `run` goes on.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { FileSystemError, fsUserError, UserError } from '../errors.js';
import {
  defaultRowLimits, type Diagnostic, formatDiagnostics, frontEnd, hasErrors, type ModelShape, type Program,
  rankedTokens, type RowLimits, type SourceSpan, totalRowsError,
} from '../lang/index.js';
import {
  buildVariant, type BuiltVariant, type GraphReader, lastPositionUnsupported, type ModelSites, readModelGraph,
  readSourceModel, type SiteOverride, SiteOverrideError, type SourceModel,
} from '../onnx/index.js';
import { mayRunLastPosition, type Plan, planProgram, siteOverridesOf } from '../plan/index.js';
import {
  bosUnavailable, type Fact, isRunError, loadFacts, loadTokenizer, type RunError, RunUserError, selectFacts,
  type Selection, type Tokenizer, tokenizerMismatch,
} from '../run/index.js';

/** Diagnostics of a .dissect file, already formatted with file:line:col and hints. */
export class DiagnosticsError extends UserError {
  constructor(readonly diagnostics: readonly Diagnostic[], sourceText: string) {
    super(formatDiagnostics([...diagnostics], sourceText));
    this.name = 'DiagnosticsError';
  }
}

export interface LoadedProgram {
  readonly file: string;
  readonly sourceText: string;
  readonly program: Program;
  /** The model, read once: the check, the variant and the head mappings all use this one. */
  readonly source: SourceModel;
  readonly plan: Plan;
  readonly tokenizer: Tokenizer;
  /** Warnings (errors throw). */
  readonly warnings: readonly Diagnostic[];
  /** The row limits it was checked with (the total is checked against the facts a run takes). */
  readonly rowLimits: RowLimits;
}

function readSource(file: string): { path: string; sourceText: string } {
  const path = resolve(file);
  try {
    return { path, sourceText: readFileSync(path, 'utf8') };
  } catch (e) {
    throw fsUserError('read', file, e, 'check the path of the .dissect file');
  }
}

/**
 * What the checker learns from a model (the answer of its ShapeOf): the model `read` gives and
 * its shape, or, for a model dissect cannot read, why (at the site override to blame).
 */
export function readModelShape(read: () => SourceModel): { source: SourceModel; shape: ModelShape } | { error: string; site?: number } {
  try {
    const source = read();
    const { sites } = source;
    return { source, shape: { layers: sites.layers, heads: sites.heads, vocab: sites.vocab } };
  } catch (e) {
    if (e instanceof SiteOverrideError) return { error: e.message, site: e.index };
    if (e instanceof FileSystemError) return { error: e.reason };
    if (e instanceof UserError) return { error: e.message };
    throw e;
  }
}

/**
 * Reads, parses and checks a .dissect file against its model, and plans it. The model's graph
 * is read here, through `readGraph`, and nowhere else in the run.
 */
export function loadProgram(
  file: string, overrides: Readonly<Record<string, string>> = {}, rowLimits = defaultRowLimits, readGraph: GraphReader = readModelGraph,
): LoadedProgram {
  const { path, sourceText } = readSource(file);
  let source: SourceModel | undefined;
  let tokenizerRead: Tokenizer | RunError | undefined;
  const out = frontEnd(sourceText, path, {
    overrides,
    rowLimits,
    shapeOf: (onnxPath, overrides, tokenizerPath) => {
      const read = readModelShape(() => readSourceModel(onnxPath, siteOverridesOf(overrides), readGraph));
      if ('error' in read) return read;
      source = read.source;
      if (tokenizerPath === undefined) return read.shape;
      tokenizerRead = loadTokenizer(tokenizerPath);
      // a tokenizer that cannot be read is reported at its statement once the file checks
      return isRunError(tokenizerRead) ? read.shape : { ...read.shape, vocab: rankedTokens(read.shape.vocab, tokenizerRead.vocabSize) };
    },
  });
  if (hasErrors(out.diagnostics) || !out.program || !source || !tokenizerRead) throw new DiagnosticsError(out.diagnostics, sourceText);
  const tokenizer = orDiagnostic(tokenizerRead, sourceText, out.program.model.tokenizerSpan);
  const mismatch = tokenizerMismatch(tokenizer, { path: out.program.model.onnx, embeddingRows: source.limits.embeddingRows })
    ?? (out.program.bos === 'prepend' ? bosUnavailable(tokenizer) : undefined);
  if (mismatch) throw new RunUserError(mismatch);
  const plan = withLastPosition(planProgram(out.program, source.sites, tokenizer.vocabSize), source.sites);
  return { file: path, sourceText, program: out.program, source, plan, tokenizer, warnings: out.diagnostics, rowLimits };
}

/**
 * The variants a run of the program compiles (the attribution variant too, when an experiment
 * takes gradients). A model the compiler cannot rewrite for this program (a reserved tensor
 * name, an op the backward pass has no rule for, …) is an error at the model statement: `check`
 * calls this too, so it finds what `run` would refuse.
 */
export function buildVariants(loaded: LoadedProgram): { variant: BuiltVariant; attribution?: BuiltVariant } {
  const { source, plan, program } = loaded;
  try {
    const variant = buildVariant(source, plan.variant);
    return plan.attributionVariant ? { variant, attribution: buildVariant(source, plan.attributionVariant) } : { variant };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    throw new DiagnosticsError([{
      span: program.model.span, severity: 'error', message: `the model cannot be compiled for this program: ${e.message}`,
      hint: e.hint ?? 'the program asks the model for an intervention or a measure its graph does not allow; `dissect inspect MODEL` shows what was recognised',
    }], loaded.sourceText);
  }
}

/** Refuses, at the dataset statement, a run of `facts` facts over the total row limit. */
export function refuseOverTotalRows(loaded: LoadedProgram, facts: number): void {
  const tooMany = totalRowsError(loaded.program.dataset.span, loaded.plan.passesPerExample - 1, facts, loaded.rowLimits);
  if (tooMany) throw new DiagnosticsError([tooMany], loaded.sourceText);
}

/** Asks the variant for a cache when some row may run its last token alone and the model allows it. */
function withLastPosition(plan: Plan, sites: ModelSites): Plan {
  const wanted = plan.experiments.some((e) => e.rows.some(mayRunLastPosition));
  return wanted && !lastPositionUnsupported(sites) ? { ...plan, variant: { ...plan.variant, lastPosition: true } } : plan;
}

/**
 * The model a .dissect file names and its `site` statements, without reading the model: for
 * `dissect inspect FILE.dissect`, which must work exactly when detection fails.
 */
export function modelStatementOf(file: string, overrides: Readonly<Record<string, string>> = {}): { onnx: string; siteOverrides: SiteOverride[] } {
  const { path, sourceText } = readSource(file);
  let named: { onnx: string; siteOverrides: SiteOverride[] } | undefined;
  const out = frontEnd(sourceText, path, {
    overrides,
    shapeOf: (onnx, sites) => {
      named = { onnx, siteOverrides: siteOverridesOf(sites) };
      return { error: 'not read' }; // the caller reads it
    },
  });
  if (!named) throw new DiagnosticsError(out.diagnostics, sourceText);
  return named;
}

/**
 * The value, or the run error as a diagnostic of the .dissect file (source line, caret and
 * hint, like the checker's) when it is about a place in it: the error's own span, else `at`.
 */
export function orDiagnostic<T>(x: T | RunError, sourceText: string, at?: SourceSpan): T {
  if (!isRunError(x)) return x;
  const span = x.span ?? at;
  if (span === undefined) throw new RunUserError(x);
  throw new DiagnosticsError([{ span, severity: 'error', message: x.message, ...(x.hint !== undefined ? { hint: x.hint } : {}) }], sourceText);
}

/** Loads the facts a run measures: the dataset, then --sample / --limit. */
export function selectedFacts(loaded: Pick<LoadedProgram, 'program' | 'sourceText'>, selection: Omit<Selection, 'shard'>): { all: Fact[]; selected: Fact[] } {
  const { program } = loaded;
  const all = orDiagnostic(loadFacts(program.dataset), loaded.sourceText).facts;
  const selected = selectFacts(all, selection);
  if (selection.example !== undefined && selected.length === 0) {
    const ids = all.slice(0, 5).map((f) => f.id).join(', ');
    throw new UserError(`--example ${selection.example}: no fact has that id in ${program.dataset.path}`, `ids look like: ${ids}${all.length > 5 ? ', …' : ''}`);
  }
  return { all, selected };
}

/** `--params FILE`: a JSON object of parameter values, applied before `--set`. */
export function readParamsFile(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw fsUserError('read --params', file, e);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new UserError(`--params ${file}: not valid JSON: ${(e as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) throw new UserError(`--params ${file}: expected an object of parameter values`, 'e.g. {"window": 9, "model": "gpt2-xl.onnx"}');
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(json)) {
    if (typeof value !== 'string' && typeof value !== 'number') throw new UserError(`--params ${file}: ${name} must be a string or a number`);
    out[name] = String(value);
  }
  return out;
}
