// The model, dataset and attributes statements, filter, bos and the named choices.
// A section of the checker (src/lang/checker.ts), a class extending the section it builds on.

import type * as A from '../ast.js';
import { allChoices, choicesInForce, describeValues, findChoice, type Choices } from '../choices.js';
import { didYouMean, relativePathsHint, suggestThen } from '../diagnostics.js';
import type { AttributesSpec, DatasetFields, DatasetSpec, Program } from '../program.js';
import type { CheckedSite } from './base.js';
import { ParamChecks } from './params.js';

const datasetFormats = ['counterfact', 'known', 'jsonl', 'csv'] as const;
const datasetFieldNames = ['prompt', 'subject', 'target', 'corrupted'] as const;

/** The fields every fields clause names (`corrupted` is optional). */
const requiredFieldNames = ['prompt', 'subject', 'target'] as const;
const attributesFormats = ['json', 'paragraphs'] as const;
const attributesOptions = ['candidates', 'keep', 'min_length', 'stopwords'] as const;
const stopwordLists = ['english', 'none'] as const;

/** The paper's settings, used when the attributes statement leaves an option out. */
const attributesDefaults = { candidates: 500, keep: 50, minLength: 3, stopwords: 'english' } as const;

export abstract class ModelDataChecks extends ParamChecks {
  model(sites: readonly CheckedSite[]): Program['model'] | undefined {
    const m = this.single('model');
    if (!m) {
      this.error(
        { line: 1, column: 1, offset: 0, endOffset: 0, endLine: 1 },
        "missing 'model' statement",
        'add: model "path/to/model.onnx" tokenizer "path/to/tokenizer.json"',
      );
      return undefined;
    }
    const onnx = this.path(m.onnx, 'a path to an .onnx model');
    let tokenizer: string | undefined;
    if (m.tokenizer) {
      tokenizer = this.path(m.tokenizer, 'a path to a tokenizer.json');
    } else {
      this.error(m.span, 'the model statement has no tokenizer', 'add: tokenizer "path/to/tokenizer.json" after the model path');
    }
    if (onnx !== undefined) {
      const shape = this.options.shapeOf(onnx, sites.map((s) => s.spec), tokenizer);
      const culprit = 'error' in shape && shape.site !== undefined ? sites[shape.site] : undefined;
      if ('error' in shape && culprit) {
        this.error(culprit.stmt.tensor.span, shape.error.replace(/\s*\n\s*/g, ' '),
          'a site override names a tensor of the graph; `dissect inspect MODEL` lists the tensors detection found');
      } else if ('error' in shape) {
        this.error(m.onnx.span, `cannot read the model ${onnx}: ${shape.error.replace(/\s*\n\s*/g, ' ')}`,
          relativePathsHint(this.absFile));
      } else {
        this.shape = shape;
      }
    }
    if (onnx === undefined || tokenizer === undefined) return undefined;
    return { onnx, tokenizer, tokenizerSpan: this.span(m.tokenizer!.span), span: this.span(m.span) };
  }

  dataset(): DatasetSpec | undefined {
    const d = this.single('dataset');
    if (!d) {
      this.error(
        { line: 1, column: 1, offset: 0, endOffset: 0, endLine: 1 },
        "missing 'dataset' statement",
        `add: dataset <format> "path", where <format> is one of ${datasetFormats.join(', ')}`,
      );
      return undefined;
    }
    const format = d.format.name;
    const path = this.path(d.path, 'a path to the dataset');
    const span = this.span(d.span);
    const pathSpan = this.span(d.path.span);
    if (format === 'counterfact' || format === 'known') {
      if (d.fields) {
        this.error(d.fieldsSpan!, `a ${format} dataset takes no fields clause`,
          `${format} files have fixed fields; 'fields' is for jsonl and csv datasets`);
        return undefined;
      }
      return path === undefined ? undefined : { format, path, pathSpan, span };
    }
    if (format === 'jsonl' || format === 'csv') {
      if (!d.fields) {
        this.error(d.span, `a ${format} dataset needs a fields clause`,
          'add: fields prompt = "<column>", subject = "<column>", target = "<column>"');
        return undefined;
      }
      const fields = this.fields(d.fields, d.fieldsSpan!);
      return path === undefined || fields === undefined ? undefined : { format, path, pathSpan, fields, span };
    }
    this.error(d.format.span, `unknown dataset format '${format}'`,
      suggestThen(format, datasetFormats, `formats: ${datasetFormats.join(', ')}`));
    return undefined;
  }

  fields(assigns: readonly A.FieldAssign[], fieldsSpan: A.Span): DatasetFields | undefined {
    const out: Record<string, string> = {};
    const seen = new Map<string, A.FieldAssign>();
    let ok = true;
    for (const f of assigns) {
      const name = f.name.name;
      if (!(datasetFieldNames as readonly string[]).includes(name)) {
        this.error(f.name.span, `unknown field '${name}'`,
          didYouMean(name, datasetFieldNames, `the fields are ${datasetFieldNames.join(', ')}`));
        ok = false;
        continue;
      }
      if (seen.has(name)) {
        this.error(f.name.span, `field '${name}' is given twice`, `keep one of the two '${name} = ...'`);
        ok = false;
        continue;
      }
      seen.set(name, f);
      const value = this.stringValue(f.value, 'a column name (string)');
      if (value === undefined) ok = false;
      else out[name] = value;
    }
    const missing = requiredFieldNames.filter((n) => !seen.has(n));
    if (missing.length > 0) {
      this.error(fieldsSpan, `missing field${missing.length > 1 ? 's' : ''} ${missing.map((m) => `'${m}'`).join(', ')}`,
        'a fields clause names all of prompt, subject and target (and optionally corrupted)');
      ok = false;
    }
    return ok ? { prompt: out.prompt!, subject: out.subject!, target: out.target!, ...(out.corrupted !== undefined ? { corrupted: out.corrupted } : {}) } : undefined;
  }

  attributes(): AttributesSpec | undefined {
    const a = this.single('attributes');
    if (!a) return undefined;
    let ok = true;
    const format = a.format.name;
    if (!(attributesFormats as readonly string[]).includes(format)) {
      this.error(a.format.span, `unknown attributes format '${format}'`,
        suggestThen(format, attributesFormats, 'formats: json (a map from subject to strings), paragraphs (a CSV with columns subject, paragraphs)'));
      ok = false;
    }
    const path = this.path(a.path, 'a path to the attributes file');
    if (path === undefined) ok = false;
    const values: { candidates: number; keep: number; minLength: number; stopwords: 'english' | 'none' } = { ...attributesDefaults };
    const named = this.namedOptions(a.options, attributesOptions, {
      unknown: (name) => `unknown attributes option '${name}'`, owner: 'attributes ',
      list: 'options: candidates <n>, keep <n>, min_length <n>, stopwords english | none',
    });
    if (!named.ok) ok = false;
    for (const [name, o] of named.given) {
      if (name === 'stopwords') {
        const word = this.optionWord(o);
        if (o.value.kind !== 'ref' || !(stopwordLists as readonly string[]).includes(word)) {
          this.error(o.value.span, `unknown stopword list '${word}'`,
            suggestThen(word, stopwordLists, "allowed: english (NLTK's English stopwords), none (no stopword filter)"));
          ok = false;
          continue;
        }
        values.stopwords = word as 'english' | 'none';
        continue;
      }
      const n = o.value.kind === 'int' ? this.literal(o.value) : this.paramUse(o.value, 'integer', `an integer for ${name}`) as number | undefined;
      if (n === undefined) { ok = false; continue; }
      if (name === 'min_length') { values.minLength = n; continue; }
      if (n < 1) {
        this.error(o.value.span, `${name} must be at least 1, got ${n}`,
          name === 'candidates' ? 'candidates is how many top tokens of the projection are cleaned (the paper: 500)' : 'keep is how many cleaned candidates are compared (the paper: 50)');
        ok = false;
        continue;
      }
      if (name === 'candidates') values.candidates = n;
      else values.keep = n;
    }
    // The default too: 500 candidates are more than a small model's vocabulary.
    const given = named.given.get('candidates');
    if (ok && !this.fitsVocabulary(`candidates ${values.candidates}${given ? '' : ' (the default)'}`, values.candidates, given ? given.value.span : a.span,
      (vocab) => `the projection ranks ${vocab} tokens; ${given ? 'write' : 'add'} candidates ${vocab} or fewer (the paper takes 500 of GPT-2's 50257)`)) {
      ok = false;
    }
    if (ok && values.keep > values.candidates) {
      const at = named.given.get('keep') ?? a;
      this.warn(at.span, `keep ${values.keep} is more than candidates ${values.candidates}: at most ${values.candidates} candidates can be kept`,
        'raise candidates or lower keep');
    }
    if (!ok) return undefined;
    return {
      format: format as AttributesSpec['format'],
      path: path!,
      pathSpan: this.span(a.path.span),
      candidates: values.candidates,
      keep: values.keep,
      minLength: values.minLength,
      stopwords: values.stopwords,
      span: this.span(a.span),
    };
  }

  enumValue<T extends string>(stmt: A.FilterStmt | A.BosStmt | undefined, allowed: readonly T[], fallback: T): T {
    if (!stmt) return fallback;
    const v = stmt.value.name;
    if ((allowed as readonly string[]).includes(v)) return v as T;
    this.error(stmt.value.span, `unknown ${stmt.kind} value '${v}'`,
      suggestThen(v, allowed, `allowed: ${allowed.join(', ')}`));
    return fallback;
  }

  choices(): Choices {
    const chosen: Record<string, string> = {};
    const seen = new Map<string, A.ChooseStmt>();
    for (const c of this.statements('choose')) {
      const name = c.name.name;
      const choice = findChoice(name);
      if (!choice) {
        const names = allChoices().map((x) => x.name);
        this.error(c.name.span, `unknown choice '${name}'`, suggestThen(name, names, `choices: ${names.join(', ')}`));
        continue;
      }
      const first = seen.get(name);
      if (first) {
        this.error(c.span, `choice '${name}' is chosen twice`, `the first 'choose ${name}' is at line ${first.span.line}`);
        continue;
      }
      seen.set(name, c);
      const value = c.value.name;
      if (!choice.values.some((v) => v.name === value)) {
        this.error(c.value.span, `unknown value '${value}' for choice '${name}'`,
          suggestThen(value, choice.values.map((v) => v.name), `allowed: ${describeValues(choice)}`));
        continue;
      }
      chosen[name] = value;
    }
    return choicesInForce(chosen);
  }
}
