// Named semantic choices: decisions where reasonable implementations differ (or where the
// paper's code and text differ). Each is an enumeration with a default; a program can pick a
// value with `choose name = value`, and every report records the values in force.
// Later issues add entries with `registerChoice` (or by extending `initialChoices`).

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

const initialChoices: readonly Choice[] = [
  {
    name: 'knockout_window',
    about: 'which layers `window(center, size)` covers',
    values: [
      {
        name: 'centred_clipped',
        meaning: 'size k centred on c: max(0, c-floor(k/2)) .. min(L-1, c+ceil(k/2)-1), as in the paper\'s code',
      },
    ],
    default: 'centred_clipped',
  },
  {
    name: 'knockout_value',
    about: 'how a blocked attention edge is removed',
    values: [
      {
        name: 'replace_half_min',
        meaning: 'blocked pre-softmax scores are replaced (ONNX Where) by half the lowest finite value of the scores\' dtype',
      },
    ],
    default: 'replace_half_min',
  },
  {
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
  },
];

const registry = new Map<string, Choice>();

/** Adds a choice. Throws if the name is taken or the default is not one of the values. */
export function registerChoice(choice: Choice): void {
  if (registry.has(choice.name)) throw new Error(`choice '${choice.name}' is already registered`);
  if (choice.values.length === 0) throw new Error(`choice '${choice.name}' has no values`);
  if (!choice.values.some((v) => v.name === choice.default)) {
    throw new Error(`choice '${choice.name}': default '${choice.default}' is not one of its values`);
  }
  registry.set(choice.name, choice);
}

for (const c of initialChoices) registerChoice(c);

/** Every registered choice, in registration order. */
export function allChoices(): readonly Choice[] {
  return [...registry.values()];
}

export function findChoice(name: string): Choice | undefined {
  return registry.get(name);
}

/** Every registered choice set to its default. */
export function defaultChoices(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const c of registry.values()) out[c.name] = c.default;
  return out;
}

/** "a (meaning), b (meaning)": the allowed values of a choice, for hints and reports. */
export function describeValues(choice: Choice): string {
  return choice.values.map((v) => `${v.name} (${v.meaning})`).join('; ');
}
