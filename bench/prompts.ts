// The XL bench's facts: 20 prompts of 10–15 GPT-2 tokens, 12.5 on average (lengths in pairs
// 10 + 15, 11 + 14, 12 + 13, so that every even-sized prefix — the baselines' samples — has
// that mean too), made from CounterFact-like subjects and relation templates, in the `known`
// format (ROME's known_1000.json). Random weights know no fact: the attribute is there only
// because the format asks for one.

import { encode } from 'gpt-3-encoder';

const SUBJECTS = [
  'Danielle Darrieux', 'Edwin of Northumbria', 'Toko Yasuda', 'Autonomous University of Madrid', 'Anaal Nathrakh', 'Apple A5',
  'Kenneth Kaunda', 'BBC One', 'Iron Man', 'Louis Bonaparte', 'Ludwig van Beethoven', 'Honda Civic', 'The Beach Boys',
];
const TEMPLATES = [
  '{} was born in the city of', 'The mother tongue of {} is', '{} is a product of', '{}, whose headquarters are in the city of',
  'In their spare time, the people of {} like to visit', '{} plays the', '{} was created by the company', 'The official religion of {} is',
  '{} is located in the country of', '{} was originally aired on', 'The native language of {} is', '{} is affiliated with the religion of',
];
const LENGTHS = [10, 15, 11, 14, 12, 13];

export interface KnownFact { readonly known_id: number; readonly prompt: string; readonly subject: string; readonly attribute: string }

/** `count` facts whose prompts have the lengths 10, 15, 11, 14, 12, 13, 10, … in GPT-2 tokens, no prompt twice. */
export function benchFacts(count: number): KnownFact[] {
  const pairs = SUBJECTS.flatMap((subject) => TEMPLATES.map((template) => ({ subject, prompt: template.replace('{}', subject) })));
  const used = new Set<string>();
  return Array.from({ length: count }, (_, i) => {
    const tokens = LENGTHS[i % LENGTHS.length]!;
    // start the search at a different pair for each fact, so that subjects and relations vary
    const start = (i * 37) % pairs.length;
    const rotated = [...pairs.slice(start), ...pairs.slice(0, start)];
    const pick = rotated.find((p) => !used.has(p.prompt) && encode(p.prompt).length === tokens);
    if (!pick) throw new Error(`internal: no unused prompt of ${tokens} tokens`);
    used.add(pick.prompt);
    return { known_id: i, prompt: pick.prompt, subject: pick.subject, attribute: 'Paris' };
  });
}
