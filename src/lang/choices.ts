// Named semantic choices: decisions where reasonable implementations differ (or where the
// paper's code and text differ). Each is an enumeration with a default; a program can pick a
// value with `choose name = value`, and every report records the values in force.
//
// The registry below is the one list: a new choice is one entry in it, and its name and
// values become types (`Choices`), so a consumer reads `choices.projection` as
// 'embedding' | 'final_norm_unembedding' and a misspelt value does not compile.

export interface ChoiceValue {
  readonly name: string;
  /** One line: what this value means. */
  readonly meaning: string;
}

export interface Choice {
  readonly name: string;
  /** One line: what is being decided. */
  readonly about: string;
  readonly values: readonly ChoiceValue[];
  readonly default: string;
}

/** A registry entry; its default must be one of its values (checked by the compiler). */
function choice<const N extends string, const V extends string>(c: {
  readonly name: N;
  readonly about: string;
  readonly values: readonly { readonly name: V; readonly meaning: string }[];
  readonly default: NoInfer<V>;
}) {
  return c;
}

const registry = [
  choice({
    name: 'knockout_window',
    about: 'which layers `window(center, size)` covers',
    values: [
      {
        name: 'centred_clipped',
        meaning: 'size k centred on c: max(0, c-floor(k/2)) .. min(L-1, c+ceil(k/2)-1), as in the paper\'s code',
      },
    ],
    default: 'centred_clipped',
  }),
  choice({
    name: 'knockout_value',
    about: 'how a blocked attention edge is removed',
    values: [
      {
        name: 'replace_half_min',
        meaning: 'blocked pre-softmax scores are replaced (ONNX Where) by half the lowest finite value of the scores\' dtype',
      },
    ],
    default: 'replace_half_min',
  }),
  choice({
    name: 'ci',
    about: 'the confidence interval reported around each mean',
    values: [
      {
        name: 'bootstrap_percentile',
        meaning: '95% percentile bootstrap over examples, 1000 resamples with a fixed seed (as seaborn draws it)',
      },
      { name: 'none', meaning: 'no interval; means only' },
    ],
    default: 'bootstrap_percentile',
  }),
  choice({
    name: 'projection',
    about: 'how a probe maps a vector (hidden state, sublayer update, head share) to a score per vocabulary token',
    values: [
      {
        name: 'embedding',
        meaning: 'h times the transposed input embedding matrix, no final layer norm, no bias, as in the paper\'s code',
      },
      {
        name: 'final_norm_unembedding',
        meaning: 'the model\'s final layer norm, then its LM head with the head\'s bias if it has one (the logit lens)',
      },
    ],
    default: 'embedding',
  }),
  choice({
    name: 'cancel_mlp',
    about: 'what `cancel mlp` does to a block\'s MLP at the cancelled positions',
    values: [
      {
        name: 'zero_preactivation',
        meaning: 'the MLP\'s pre-activations are set to 0, so it still writes its output bias, as in the paper\'s code',
      },
      { name: 'zero_update', meaning: 'the MLP adds nothing to the residual stream' },
    ],
    default: 'zero_preactivation',
  }),
  choice({
    name: 'cancel_attention',
    about: 'what `cancel attention` does to a block\'s attention at the cancelled query positions',
    values: [
      {
        name: 'uniform',
        meaning: 'every score of the query is masked alike, so it attends uniformly to its prefix and still writes the ' +
          'mean value vector through the output projection and bias, as in the paper\'s code',
      },
      { name: 'zero_update', meaning: 'the attention adds nothing to the residual stream' },
    ],
    default: 'uniform',
  }),
  choice({
    name: 'head_mapping_side',
    about: 'which vocabulary matrix S reads a head\'s OV circuit in token space for `head_mappings` (M = S·W_V·W_O·Sᵀ)',
    values: [
      {
        name: 'unembedding',
        meaning: 'S is the LM head W_U (as [vocabulary, d]), as in Dar et al. (2023); for GPT-2, whose head is tied, it equals E',
      },
      { name: 'embedding', meaning: 'S is the input token-embedding matrix E' },
    ],
    default: 'unembedding',
  }),
  choice({
    name: 'mapping_subject_token',
    about: 'which subject tokens count as the source of a subject → attribute pair when `head_mappings` flags heads',
    values: [
      { name: 'last', meaning: 'only the last subject token of each kept fact' },
      { name: 'any', meaning: 'any token of the subject of each kept fact' },
    ],
    default: 'last',
  }),
  choice({
    name: 'head_mapping_normalisation',
    about: 'whether `head_mappings` divides M by per-token normalisers before taking its top entries',
    values: [
      { name: 'none', meaning: 'M as it is' },
      {
        name: 'token_frequency',
        meaning: 'M[s, t] / (n_in[s] · n_out[t]), n_in[t] = 1e-9 + mean |S·W_V| of token t and n_out[t] = 1e-9 + mean |W_O·Sᵀ| ' +
          'over every head of every layer of the model: our reading of Dar et al.\'s notebook, unconfirmed against the paper',
      },
    ],
    default: 'none',
  }),
  choice({
    name: 'recompute',
    about: 'how `<probe> of attention l without S` rebuilds the attention weights of the last position once the keys S are removed',
    values: [
      {
        name: 'renormalise',
        meaning: 'the removed weights become 0 and each head\'s remaining weights are divided by their sum (all removed: ' +
          'every weight 0, so the update is the output projection\'s bias)',
      },
      {
        name: 'paper_resoftmax',
        meaning: 'as the paper\'s code: a softmax over the keys of the probabilities with the removed ones set to -1e6, so ' +
          'the survivors get weights proportional to exp(p) (all removed: every weight 0, as the code\'s "block all")',
      },
    ],
    default: 'renormalise',
  }),
  choice({
    name: 'attribution_target',
    about: 'the value y whose gradient `attribution` and `integrated_gradients` take: a function of the clean prediction t at the last position',
    values: [
      { name: 'log_probability', meaning: 'y = log p(t), the log-softmax of the last position\'s logits at t' },
      { name: 'probability', meaning: 'y = p(t), the softmax probability of t' },
      { name: 'logit', meaning: 'y = the logit of t' },
    ],
    default: 'log_probability',
  }),
  choice({
    name: 'attribution_reduction',
    about: 'how `attribution` and `integrated_gradients` reduce a position\'s product of hidden state and gradient over the model width',
    values: [
      { name: 'sum', meaning: 'Σ_d h_d · ∂y/∂h_d, signed (integrated gradients: Σ_d (h − b)_d times the mean gradient)' },
      { name: 'l2_norm', meaning: 'the L2 norm over d of the product, ‖h ⊙ ∂y/∂h‖₂: its size, without a sign' },
    ],
    default: 'sum',
  }),
] as const;

type Entry = (typeof registry)[number];
export type ChoiceName = Entry['name'];
/** The values of one choice. */
export type ChoiceOption<N extends ChoiceName> = Extract<Entry, { name: N }>['values'][number]['name'];
/** Every choice with its value in force. */
export type Choices = { readonly [N in ChoiceName]: ChoiceOption<N> };

/** Every choice, in registry order. */
export function allChoices(): readonly Choice[] {
  return registry;
}

export function findChoice(name: string): Choice | undefined {
  return registry.find((c) => c.name === name);
}

/** Every choice set to its default. */
export function defaultChoices(): Choices {
  return Object.fromEntries(registry.map((c) => [c.name, c.default])) as Choices;
}

/**
 * The choices in force: the defaults, with `chosen` (name → value, already checked against
 * the registry by the checker) in their place. An unknown name or value is a bug.
 */
export function choicesInForce(chosen: Readonly<Record<string, string>>): Choices {
  for (const [name, value] of Object.entries(chosen)) {
    if (!findChoice(name)?.values.some((v) => v.name === value)) throw new Error(`internal: choice ${name} = ${value} is not in the registry`);
  }
  return { ...defaultChoices(), ...chosen } as Choices;
}

/** "a (meaning), b (meaning)": the allowed values of a choice, for hints and reports. */
export function describeValues(choice: Choice): string {
  return choice.values.map((v) => `${v.name} (${v.meaning})`).join('; ');
}
