// The checker: AST + `--set` overrides + the model's shape → the checked Program.
// It resolves parameters and names, types every use, validates ranges against the model,
// and collects every error it can find in one pass (it never throws for user errors).
//
// Its sections share one state (the diagnostics, parameters, position definitions, the model's
// shape), so each is a class in src/lang/check/ extending the one it builds on: base, params,
// model-data, positions, layers, interventions, measures, experiments, sites, head-mappings;
// this file runs them in order.

import type * as A from './ast.js';
import { HeadMappingChecks } from './check/head-mappings.js';
import { hasErrors, sortDiagnostics } from './diagnostics.js';
import type { RowLimits } from './limits.js';
import type { BosPolicy, Diagnostic, FactFilter, ModelShape, Program, SiteOverrideSpec } from './program.js';

const factFilters: readonly FactFilter[] = ['known', 'none'];
const bosPolicies: readonly BosPolicy[] = ['none', 'prepend'];

/**
 * Reads the model's shape, detecting its sites with the file's `site` overrides, and with the
 * tokenizer (when the file names one) the tokens a projection ranks. An error caused by one
 * override gives its index, so that it is reported at that statement.
 */
export type ShapeOf = (onnxPath: string, sites: readonly SiteOverrideSpec[], tokenizerPath: string | undefined) => ModelShape | { error: string; site?: number };

export interface CheckOptions {
  /** The .dissect source text (experiments quote their own lines). */
  readonly source: string;
  /** `--set name=value` overrides. */
  readonly overrides: Readonly<Record<string, string>>;
  /** Reads the model's shape; called once, with the resolved model path, if it resolved. */
  readonly shapeOf: ShapeOf;
  /** Rows the experiments may give per fact (the total is checked once the facts are read). */
  readonly rowLimits?: RowLimits;
}

export interface CheckResult {
  readonly program?: Program;
  readonly diagnostics: Diagnostic[];
}

class Checker extends HeadMappingChecks {
  run(): CheckResult {
    const choices = this.choices();
    this.windowRule = choices.knockout_window;
    this.resolveParams();
    this.collectPositionDefs();
    const sites = this.siteOverrides();
    const model = this.model(sites);
    this.siteLayersInRange(sites);
    const dataset = this.dataset();
    // From the statement, so a dataset with other errors does not add this one too.
    this.hasCorrupted = (this.statements('dataset')[0]?.fields ?? []).some((f) => f.name.name === 'corrupted');
    const attributesStmt = this.statements('attributes')[0];
    this.hasAttributes = attributesStmt !== undefined;
    const attributes = this.attributes();
    const filter = this.enumValue(this.single('filter'), factFilters, 'known');
    const bos = this.enumValue(this.single('bos'), bosPolicies, 'none');
    const headMappings = this.headMappings();
    // Definitions no experiment uses are still checked.
    for (const [name, def] of this.positionDefs) this.positionDef(name, { kind: 'ref', name, span: def.name.span });
    const experiments = this.experiments();
    if (attributesStmt && !this.usesAttributes) {
      this.warn(attributesStmt.span, 'the attributes statement is not used: no experiment measures attributes_rate',
        'attribute sets are read only for attributes_rate; remove the statement or add the probe');
    }
    const diagnostics = sortDiagnostics(this.diagnostics);
    if (hasErrors(diagnostics) || !model || !dataset) return { diagnostics };
    const params: Record<string, number | string> = {};
    for (const p of this.params.values()) params[p.name] = p.value;
    return {
      program: {
        file: this.absFile, model, dataset, ...(attributes ? { attributes } : {}), filter, bos, choices, params, experiments,
        ...(headMappings ? { headMappings } : {}),
        siteOverrides: sites.map((s) => s.spec),
      },
      diagnostics,
    };
  }
}

/** Checks a parsed document. The model's shape comes from `options.shapeOf`. */
export function check(doc: A.Document, options: CheckOptions): CheckResult {
  return new Checker(doc, options).run();
}
