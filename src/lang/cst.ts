// Generated from the parser's rules by src/lang/grammar-export.ts (npx tsc -p . && node dist/src/lang/grammar-export.js); do not edit.

import type { CstNode, ICstVisitor, IToken } from "chevrotain";

export interface DocumentCstNode extends CstNode {
  name: "document";
  children: DocumentCstChildren;
}

export type DocumentCstChildren = {
  statement?: StatementCstNode[];
};

export interface StatementCstNode extends CstNode {
  name: "statement";
  children: StatementCstChildren;
}

export type StatementCstChildren = {
  paramStatement?: ParamStatementCstNode[];
  modelStatement?: ModelStatementCstNode[];
  datasetStatement?: DatasetStatementCstNode[];
  attributesStatement?: AttributesStatementCstNode[];
  filterStatement?: FilterStatementCstNode[];
  bosStatement?: BosStatementCstNode[];
  chooseStatement?: ChooseStatementCstNode[];
  positionsStatement?: PositionsStatementCstNode[];
  headMappingsStatement?: HeadMappingsStatementCstNode[];
  siteStatement?: SiteStatementCstNode[];
  experimentStatement?: ExperimentStatementCstNode[];
};

export interface ParamStatementCstNode extends CstNode {
  name: "paramStatement";
  children: ParamStatementCstChildren;
}

export type ParamStatementCstChildren = {
  Param: IToken[];
  Name: IToken[];
  Equals: IToken[];
  String?: IToken[];
  Integer?: IToken[];
};

export interface ModelStatementCstNode extends CstNode {
  name: "modelStatement";
  children: ModelStatementCstChildren;
}

export type ModelStatementCstChildren = {
  Model: IToken[];
  value: (ValueCstNode)[];
  Tokenizer?: IToken[];
};

export interface ValueCstNode extends CstNode {
  name: "value";
  children: ValueCstChildren;
}

export type ValueCstChildren = {
  String?: IToken[];
  Name?: IToken[];
};

export interface DatasetStatementCstNode extends CstNode {
  name: "datasetStatement";
  children: DatasetStatementCstChildren;
}

export type DatasetStatementCstChildren = {
  Dataset: IToken[];
  Name: IToken[];
  value: ValueCstNode[];
  Fields?: IToken[];
  field?: FieldCstNode[];
  Comma?: IToken[];
};

export interface FieldCstNode extends CstNode {
  name: "field";
  children: FieldCstChildren;
}

export type FieldCstChildren = {
  Name: IToken[];
  Equals: IToken[];
  value: ValueCstNode[];
};

export interface AttributesStatementCstNode extends CstNode {
  name: "attributesStatement";
  children: AttributesStatementCstChildren;
}

export type AttributesStatementCstChildren = {
  Attributes: IToken[];
  Name: IToken[];
  value: ValueCstNode[];
  attributeOption?: AttributeOptionCstNode[];
};

export interface AttributeOptionCstNode extends CstNode {
  name: "attributeOption";
  children: AttributeOptionCstChildren;
}

export type AttributeOptionCstChildren = {
  Name: (IToken)[];
  Integer?: IToken[];
};

export interface FilterStatementCstNode extends CstNode {
  name: "filterStatement";
  children: FilterStatementCstChildren;
}

export type FilterStatementCstChildren = {
  Filter: IToken[];
  Name: IToken[];
};

export interface BosStatementCstNode extends CstNode {
  name: "bosStatement";
  children: BosStatementCstChildren;
}

export type BosStatementCstChildren = {
  Bos: IToken[];
  Name: IToken[];
};

export interface ChooseStatementCstNode extends CstNode {
  name: "chooseStatement";
  children: ChooseStatementCstChildren;
}

export type ChooseStatementCstChildren = {
  Choose: IToken[];
  Name: (IToken)[];
  Equals: IToken[];
};

export interface PositionsStatementCstNode extends CstNode {
  name: "positionsStatement";
  children: PositionsStatementCstChildren;
}

export type PositionsStatementCstChildren = {
  Positions: IToken[];
  Name: IToken[];
  Equals: IToken[];
  positionExpr: PositionExprCstNode[];
};

export interface HeadMappingsStatementCstNode extends CstNode {
  name: "headMappingsStatement";
  children: HeadMappingsStatementCstChildren;
}

export type HeadMappingsStatementCstChildren = {
  HeadMappings: IToken[];
  Layers: IToken[];
  layerSet: LayerSetCstNode[];
  Comma?: IToken[];
  Top: IToken[];
  intValue: IntValueCstNode[];
};

export interface SiteStatementCstNode extends CstNode {
  name: "siteStatement";
  children: SiteStatementCstChildren;
}

export type SiteStatementCstChildren = {
  Site: IToken[];
  Name: IToken[];
  At: IToken[];
  Layers: IToken[];
  layerSet: LayerSetCstNode[];
  Equals: IToken[];
  value: ValueCstNode[];
};

export interface ExperimentStatementCstNode extends CstNode {
  name: "experimentStatement";
  children: ExperimentStatementCstChildren;
}

export type ExperimentStatementCstChildren = {
  Experiment: IToken[];
  Name: IToken[];
  LBrace: IToken[];
  experimentItem?: ExperimentItemCstNode[];
  RBrace: IToken[];
};

export interface ExperimentItemCstNode extends CstNode {
  name: "experimentItem";
  children: ExperimentItemCstChildren;
}

export type ExperimentItemCstChildren = {
  forStatement?: ForStatementCstNode[];
  blockStatement?: BlockStatementCstNode[];
  cancelStatement?: CancelStatementCstNode[];
  patchStatement?: PatchStatementCstNode[];
  measureStatement?: MeasureStatementCstNode[];
  summarizeStatement?: SummarizeStatementCstNode[];
};

export interface ForStatementCstNode extends CstNode {
  name: "forStatement";
  children: ForStatementCstChildren;
}

export type ForStatementCstChildren = {
  For: IToken[];
  Name: IToken[];
  In: IToken[];
  Layers?: IToken[];
  layerSet?: (LayerSetCstNode)[];
  Comma?: (IToken)[];
  Positions?: IToken[];
  positionSweepItem?: PositionSweepItemCstNode[];
  Hidden?: IToken[];
};

export interface PositionSweepItemCstNode extends CstNode {
  name: "positionSweepItem";
  children: PositionSweepItemCstChildren;
}

export type PositionSweepItemCstChildren = {
  Each?: IToken[];
  Minus?: (IToken)[];
  Integer?: (IToken)[];
  DotDot?: IToken[];
  positionExpr?: PositionExprCstNode[];
};

export interface BlockStatementCstNode extends CstNode {
  name: "blockStatement";
  children: BlockStatementCstChildren;
}

export type BlockStatementCstChildren = {
  Block: IToken[];
  positionExpr: (PositionExprCstNode)[];
  Arrow: IToken[];
  At: IToken[];
  Layers: IToken[];
  layerSet: LayerSetCstNode[];
  Heads?: IToken[];
  headSet?: HeadSetCstNode[];
};

export interface HeadSetCstNode extends CstNode {
  name: "headSet";
  children: HeadSetCstChildren;
}

export type HeadSetCstChildren = {
  All?: IToken[];
  intValue?: IntValueCstNode[];
  Comma?: IToken[];
};

export interface CancelStatementCstNode extends CstNode {
  name: "cancelStatement";
  children: CancelStatementCstChildren;
}

export type CancelStatementCstChildren = {
  Cancel: IToken[];
  Name: IToken[];
  At: (IToken)[];
  Layers: IToken[];
  layerSet: LayerSetCstNode[];
  Positions?: IToken[];
  positionExpr?: PositionExprCstNode[];
};

export interface PatchStatementCstNode extends CstNode {
  name: "patchStatement";
  children: PatchStatementCstChildren;
}

export type PatchStatementCstChildren = {
  Patch: IToken[];
  Hidden: (IToken)[];
  intExpr: (IntExprCstNode)[];
  At: IToken[];
  Positions: IToken[];
  positionExpr: PositionExprCstNode[];
  With: IToken[];
  Mean?: IToken[];
  Corrupted?: IToken[];
};

export interface MeasureStatementCstNode extends CstNode {
  name: "measureStatement";
  children: MeasureStatementCstChildren;
}

export type MeasureStatementCstChildren = {
  Measure: IToken[];
  measureItem: MeasureItemCstNode[];
  Comma?: IToken[];
};

export interface MeasureItemCstNode extends CstNode {
  name: "measureItem";
  children: MeasureItemCstChildren;
}

export type MeasureItemCstChildren = {
  AttentionWeight?: IToken[];
  positionExpr?: (PositionExprCstNode)[];
  Arrow?: IToken[];
  At?: (IToken)[];
  Layer?: IToken[];
  intExpr?: IntExprCstNode[];
  Heads?: IToken[];
  Name?: (IToken)[];
  intValue?: IntValueCstNode[];
  Of?: IToken[];
  site?: SiteCstNode[];
  probeOption?: ProbeOptionCstNode[];
  Without?: IToken[];
};

export interface ProbeOptionCstNode extends CstNode {
  name: "probeOption";
  children: ProbeOptionCstChildren;
}

export type ProbeOptionCstChildren = {
  Name: (IToken)[];
  Integer?: IToken[];
};

export interface SiteCstNode extends CstNode {
  name: "site";
  children: SiteCstChildren;
}

export type SiteCstChildren = {
  Name?: (IToken)[];
  intExpr?: IntExprCstNode[];
};

export interface SummarizeStatementCstNode extends CstNode {
  name: "summarizeStatement";
  children: SummarizeStatementCstChildren;
}

export type SummarizeStatementCstChildren = {
  Summarize: IToken[];
  Name: IToken[];
  In?: IToken[];
  Layers?: IToken[];
  layerSet?: LayerSetCstNode[];
};

export interface PositionExprCstNode extends CstNode {
  name: "positionExpr";
  children: PositionExprCstChildren;
}

export type PositionExprCstChildren = {
  positionTerm: (PositionTermCstNode)[];
  Plus?: IToken[];
  Minus?: IToken[];
};

export interface PositionTermCstNode extends CstNode {
  name: "positionTerm";
  children: PositionTermCstChildren;
}

export type PositionTermCstChildren = {
  Name?: IToken[];
  indexList?: IndexListCstNode[];
  LParen?: IToken[];
  positionExpr?: PositionExprCstNode[];
  RParen?: IToken[];
};

export interface IndexListCstNode extends CstNode {
  name: "indexList";
  children: IndexListCstChildren;
}

export type IndexListCstChildren = {
  LBracket: IToken[];
  signedInteger: SignedIntegerCstNode[];
  Comma?: IToken[];
  RBracket: IToken[];
};

export interface SignedIntegerCstNode extends CstNode {
  name: "signedInteger";
  children: SignedIntegerCstChildren;
}

export type SignedIntegerCstChildren = {
  Minus?: IToken[];
  Integer: IToken[];
};

export interface LayerSetCstNode extends CstNode {
  name: "layerSet";
  children: LayerSetCstChildren;
}

export type LayerSetCstChildren = {
  layerBase: LayerBaseCstNode[];
  Within?: IToken[];
  intExpr?: (IntExprCstNode)[];
  DotDot?: IToken[];
};

export interface LayerBaseCstNode extends CstNode {
  name: "layerBase";
  children: LayerBaseCstChildren;
}

export type LayerBaseCstChildren = {
  All?: IToken[];
  Window?: IToken[];
  LParen?: IToken[];
  intExpr?: (IntExprCstNode)[];
  Comma?: IToken[];
  RParen?: IToken[];
  DotDot?: IToken[];
};

export interface IntExprCstNode extends CstNode {
  name: "intExpr";
  children: IntExprCstChildren;
}

export type IntExprCstChildren = {
  intValue: (IntValueCstNode)[];
  Plus?: IToken[];
  Minus?: IToken[];
};

export interface IntValueCstNode extends CstNode {
  name: "intValue";
  children: IntValueCstChildren;
}

export type IntValueCstChildren = {
  Integer?: IToken[];
  Name?: IToken[];
};

export interface ICstNodeVisitor<IN, OUT> extends ICstVisitor<IN, OUT> {
  document(children: DocumentCstChildren, param?: IN): OUT;
  statement(children: StatementCstChildren, param?: IN): OUT;
  paramStatement(children: ParamStatementCstChildren, param?: IN): OUT;
  modelStatement(children: ModelStatementCstChildren, param?: IN): OUT;
  value(children: ValueCstChildren, param?: IN): OUT;
  datasetStatement(children: DatasetStatementCstChildren, param?: IN): OUT;
  field(children: FieldCstChildren, param?: IN): OUT;
  attributesStatement(children: AttributesStatementCstChildren, param?: IN): OUT;
  attributeOption(children: AttributeOptionCstChildren, param?: IN): OUT;
  filterStatement(children: FilterStatementCstChildren, param?: IN): OUT;
  bosStatement(children: BosStatementCstChildren, param?: IN): OUT;
  chooseStatement(children: ChooseStatementCstChildren, param?: IN): OUT;
  positionsStatement(children: PositionsStatementCstChildren, param?: IN): OUT;
  headMappingsStatement(children: HeadMappingsStatementCstChildren, param?: IN): OUT;
  siteStatement(children: SiteStatementCstChildren, param?: IN): OUT;
  experimentStatement(children: ExperimentStatementCstChildren, param?: IN): OUT;
  experimentItem(children: ExperimentItemCstChildren, param?: IN): OUT;
  forStatement(children: ForStatementCstChildren, param?: IN): OUT;
  positionSweepItem(children: PositionSweepItemCstChildren, param?: IN): OUT;
  blockStatement(children: BlockStatementCstChildren, param?: IN): OUT;
  headSet(children: HeadSetCstChildren, param?: IN): OUT;
  cancelStatement(children: CancelStatementCstChildren, param?: IN): OUT;
  patchStatement(children: PatchStatementCstChildren, param?: IN): OUT;
  measureStatement(children: MeasureStatementCstChildren, param?: IN): OUT;
  measureItem(children: MeasureItemCstChildren, param?: IN): OUT;
  probeOption(children: ProbeOptionCstChildren, param?: IN): OUT;
  site(children: SiteCstChildren, param?: IN): OUT;
  summarizeStatement(children: SummarizeStatementCstChildren, param?: IN): OUT;
  positionExpr(children: PositionExprCstChildren, param?: IN): OUT;
  positionTerm(children: PositionTermCstChildren, param?: IN): OUT;
  indexList(children: IndexListCstChildren, param?: IN): OUT;
  signedInteger(children: SignedIntegerCstChildren, param?: IN): OUT;
  layerSet(children: LayerSetCstChildren, param?: IN): OUT;
  layerBase(children: LayerBaseCstChildren, param?: IN): OUT;
  intExpr(children: IntExprCstChildren, param?: IN): OUT;
  intValue(children: IntValueCstChildren, param?: IN): OUT;
}
