// The probes: what a `measure` item reads inside the model. The registry below is the one
// list: the checker takes each probe's syntax and the sites it may read from its entry, the
// measure descriptors their probe names, and the report its unit; the measure stage evaluates it
// (src/measure/probes.ts, a table keyed by these names, so a probe missing there does not compile).
//
// Most probes read a site of the model (`<probe> [count] of <site> [without S] [at P]`); the
// others have a syntax of their own (attention_weight; the gradient probes, which take options).

import type { Site } from './program.js';

/** The site kinds a probe can read, as written after `of`. */
export const siteNames = ['hidden', 'attention', 'mlp', 'heads', 'subject_embeddings'] as const satisfies readonly Site['kind'][];
export type SiteName = (typeof siteNames)[number];

/** How a measured number reads: its title with the unit, shown factor and axis (the console summary's and the report's). */
export interface Quantity {
  /** What the number is, with its unit. */
  readonly title: string;
  /** Shown value = stored value × factor: extraction's 0/1 events are shown in % of examples, as the summaries count them. */
  readonly factor: number;
  /** Ranks span orders of magnitude: they are drawn on a log axis. */
  readonly log: boolean;
}

interface SiteProbeEntry<N extends string> {
  readonly name: N;
  readonly syntax: 'site';
  /** One line: what the probe measures. */
  readonly about: string;
  readonly sites: readonly SiteName[];
  /**
   * The top tokens of the site's projection the probe reads: its own count (`top_tokens 10 of …`,
   * the one probe that takes a count), the attributes statement's `candidates`, or a number.
   */
  readonly topTokens: 'count' | 'candidates' | number;
  /** `… of attention l without S`: the probe can read a recomputed attention update. */
  readonly without: boolean;
  readonly quantity: Quantity;
}

interface OwnSyntaxEntry<N extends string, S extends 'attention_weight' | 'gradient'> {
  readonly name: N;
  readonly syntax: S;
  readonly about: string;
  readonly quantity: Quantity;
}

const siteEntry = <const N extends string>(e: Omit<SiteProbeEntry<N>, 'syntax'>): SiteProbeEntry<N> => ({ ...e, syntax: 'site' });
const ownEntry = <const N extends string, const S extends 'attention_weight' | 'gradient'>(e: OwnSyntaxEntry<N, S>): OwnSyntaxEntry<N, S> => e;

const registry = [
  siteEntry({
    name: 'attributes_rate',
    about: '% of the cleaned top candidates of the projected site that are in the subject\'s attribute set',
    sites: ['hidden', 'attention', 'mlp', 'subject_embeddings'],
    topTokens: 'candidates',
    without: false,
    quantity: { title: 'attributes rate, %', factor: 1, log: false },
  }),
  siteEntry({
    name: 'extraction',
    about: '1 if the top-1 token of the projected site is the clean prediction, else 0',
    sites: ['hidden', 'attention', 'mlp', 'heads'],
    // two, so that a tie for the top is seen, not silently broken
    topTokens: 2,
    without: true,
    quantity: { title: 'examples with an event, %', factor: 100, log: false },
  }),
  siteEntry({
    name: 'target_rank',
    about: 'the rank of the clean prediction in the projected site (0 = top-1)',
    sites: ['hidden', 'attention', 'mlp', 'heads', 'subject_embeddings'],
    topTokens: 0,
    without: true,
    quantity: { title: 'projection rank (0 = top-1)', factor: 1, log: true },
  }),
  siteEntry({
    name: 'top_tokens',
    about: 'the k top tokens of the projected site',
    sites: ['hidden', 'attention', 'mlp', 'subject_embeddings'],
    topTokens: 'count',
    without: true,
    quantity: { title: 'top tokens', factor: 1, log: false },
  }),
  siteEntry({
    name: 'norm',
    about: 'the L2 norm of the site\'s vector (a hidden state, a block\'s update or a head\'s share of it), before any projection',
    sites: ['hidden', 'attention', 'mlp', 'heads'],
    topTokens: 0,
    without: false,
    quantity: { title: 'L2 norm', factor: 1, log: false },
  }),
  ownEntry({
    name: 'attention_weight',
    syntax: 'attention_weight',
    about: 'the attention query positions give key positions at a layer, summed over keys, averaged over queries',
    quantity: { title: 'attention weight', factor: 1, log: false },
  }),
  ownEntry({
    name: 'attribution',
    syntax: 'gradient',
    about: 'gradient × hidden state of the row\'s own run, per position',
    quantity: { title: 'gradient × hidden state', factor: 1, log: false },
  }),
  ownEntry({
    name: 'integrated_gradients',
    syntax: 'gradient',
    about: 'integrated gradients of a hidden state from a baseline, per position',
    quantity: { title: 'integrated gradients', factor: 1, log: false },
  }),
] as const;

type Entry = (typeof registry)[number];
export type ProbeName = Entry['name'];
/** The probes written `<probe> [count] of <site> …`. */
export type SiteProbeName = Extract<Entry, { syntax: 'site' }>['name'];
export type SiteProbe = SiteProbeEntry<SiteProbeName>;

/** Every probe name, in registry order. */
export const probeNames: readonly ProbeName[] = registry.map((e) => e.name);

export function findProbe(name: string): Entry | undefined {
  return registry.find((e) => e.name === name);
}

const siteProbes: readonly SiteProbe[] = registry.filter((e): e is Extract<Entry, { syntax: 'site' }> => e.syntax === 'site');

export function siteProbe(name: SiteProbeName): SiteProbe {
  return siteProbes.find((e) => e.name === name)!;
}

/** The site probes that `allows`, by name (for hints). */
export function siteProbesThat(allows: (p: SiteProbe) => boolean): SiteProbeName[] {
  return siteProbes.filter(allows).map((e) => e.name);
}

export function probeQuantity(name: ProbeName): Quantity {
  return findProbe(name)!.quantity;
}
