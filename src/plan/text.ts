// Parts of a checked program written back as the language writes them. The checker has
// already replaced parameters by their values, so the text shows `window(l, 3)` where the
// source says `window(l, window)`: what a report needs to say what a row did.

import type { IntExpr, Intervention, LayerSet, PositionSet } from '../lang/program.js';

const compound = (kind: string): boolean => kind === 'union' || kind === 'difference' || kind === 'add' || kind === 'sub';

/** A position set (sweep variables by name). */
export function positionSetText(set: PositionSet): string {
  switch (set.kind) {
    case 'named': return set.name;
    case 'var': return set.name;
    case 'indices': return `[${set.indices.join(', ')}]`;
    case 'union': case 'difference': {
      const right = compound(set.right.kind) ? `(${positionSetText(set.right)})` : positionSetText(set.right);
      return `${positionSetText(set.left)} ${set.kind === 'union' ? '+' : '-'} ${right}`;
    }
  }
}

export function intExprText(e: IntExpr): string {
  switch (e.kind) {
    case 'int': return String(e.value);
    case 'var': return e.name;
    case 'add': case 'sub': {
      const right = compound(e.right.kind) ? `(${intExprText(e.right)})` : intExprText(e.right);
      return `${intExprText(e.left)} ${e.kind === 'add' ? '+' : '-'} ${right}`;
    }
  }
}

export function layerSetText(set: LayerSet): string {
  switch (set.kind) {
    case 'all': return 'all';
    case 'single': return intExprText(set.layer);
    case 'range': return `${intExprText(set.from)}..${intExprText(set.to)}`;
    case 'window': return `window(${intExprText(set.center)}, ${intExprText(set.size)})`;
    case 'within': return `${layerSetText(set.set)} within ${intExprText(set.from)}..${intExprText(set.to)}`;
  }
}

/** One intervention statement. */
export function interventionText(i: Intervention): string {
  switch (i.kind) {
    case 'block': {
      const heads = i.heads === 'all' ? '' : ` heads ${i.heads.join(', ')}`;
      return `block ${positionSetText(i.source)} -> ${positionSetText(i.target)} at layers ${layerSetText(i.layers)}${heads}`;
    }
    case 'cancel': {
      const at = i.positions.kind === 'named' && i.positions.name === 'all' ? '' : ` at positions ${positionSetText(i.positions)}`;
      return `cancel ${i.sublayer} at layers ${layerSetText(i.layers)}${at}`;
    }
    case 'patch': {
      const source = { hidden: 'hidden', mean_hidden: 'mean hidden', corrupted_hidden: 'corrupted hidden' }[i.source.kind];
      return `patch hidden ${intExprText(i.layer)} at positions ${positionSetText(i.positions)} with ${source} ${intExprText(i.source.index)}`;
    }
  }
}
