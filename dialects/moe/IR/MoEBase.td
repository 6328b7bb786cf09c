//===- MoEBase.td - The moe dialect, its enums and attributes -*- tablegen -*-===//
//
// The dialect definition and the enumerations that carry the layer spec's
// choices (../shared/spec/moe-layer.md §1) as typed attributes.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_IR_MOEBASE_TD
#define MOE_IR_MOEBASE_TD

include "mlir/IR/OpBase.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def MoE_Dialect : Dialect {
  let name = "moe";
  let cppNamespace = "::mlir::moe";
  let summary = "Sparse mixture-of-experts layers as first-class operations";
  let description = [{
    The `moe` dialect expresses one sparse mixture-of-experts FFN layer at two
    levels. `moe.layer` is the whole layer on tensors, with every field of the
    layer spec held as a typed attribute. The decomposed operations are the
    steps it is made of: `moe.route` (router logits, probabilities and
    log-sum-exp, always in f32; softmax or sigmoid scores),
    `moe.choice_scores` (score bias and expert-group limit of the routing
    families of spec section 8), `moe.top_k` (expert choice and gates),
    `moe.expert_choice` (each expert takes its C best tokens of a group),
    `moe.assign_slots` (capacity-bounded slot assignment), `moe.dispatch`
    (tokens into expert buffers), `moe.expert_ffn` (the expert MLPs, batched
    over experts), `moe.combine` (gated sum back to tokens),
    `moe.shared_expert` (the expert every token passes through),
    `moe.all_to_all`
    (exchange of expert buffers across devices) and the statistics
    (`moe.load_balance_loss`, `moe.router_z_loss`, `moe.count_dropped`).

    Notation used throughout: T tokens, D = d_model, F = d_ff, E experts,
    k = top_k, S tokens per routing group, G = T / S groups, C the capacity of
    one expert in one group.
  }];
  let useDefaultAttributePrinterParser = 1;
  let hasConstantMaterializer = 1;
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def MoE_Activation : I32EnumAttr<"Activation", "expert nonlinearity", [
    I32EnumAttrCase<"Relu", 0, "relu">,
    I32EnumAttrCase<"Gelu", 1, "gelu">,
    I32EnumAttrCase<"GeluTanh", 2, "gelu_tanh">,
    I32EnumAttrCase<"Silu", 3, "silu">,
    I32EnumAttrCase<"Geglu", 4, "geglu">,
    I32EnumAttrCase<"Swiglu", 5, "swiglu">
  ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_ActivationAttr : EnumAttr<MoE_Dialect, MoE_Activation, "activation"> {
  let summary = "expert nonlinearity (`geglu` and `swiglu` are gated)";
}

def MoE_Priority : I32EnumAttr<"Priority",
    "which assignment keeps a slot when an expert overflows", [
    I32EnumAttrCase<"Position", 0, "position">,
    I32EnumAttrCase<"BatchPrioritized", 1, "batch_prioritized">
  ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_PriorityAttr : EnumAttr<MoE_Dialect, MoE_Priority, "priority"> {
  let summary = "slot priority policy";
}

def MoE_Routing : I32EnumAttr<"Routing", "who chooses (spec section 8)", [
    I32EnumAttrCase<"TokensChoose", 0, "tokens_choose">,
    I32EnumAttrCase<"ExpertsChoose", 1, "experts_choose">
  ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_RoutingAttr : EnumAttr<MoE_Dialect, MoE_Routing, "routing"> {
  let summary = "token choice (top-k) or expert choice routing";
}

def MoE_ScoreFunction : I32EnumAttr<"ScoreFunction",
    "how router logits become scores", [
    I32EnumAttrCase<"Softmax", 0, "softmax">,
    I32EnumAttrCase<"Sigmoid", 1, "sigmoid">
  ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_ScoreFunctionAttr
    : EnumAttr<MoE_Dialect, MoE_ScoreFunction, "score_function"> {
  let summary = "softmax over the experts, or an elementwise sigmoid";
}

def MoE_GroupScore : I32EnumAttr<"GroupScore",
    "the score of an expert group", [
    I32EnumAttrCase<"Max", 0, "max">,
    I32EnumAttrCase<"Top2Sum", 1, "top2_sum">
  ]> {
  let cppNamespace = "::mlir::moe";
  let genSpecializedAttr = 0;
}

def MoE_GroupScoreAttr : EnumAttr<MoE_Dialect, MoE_GroupScore, "group_score"> {
  let summary = "a group's largest choice score, or its two largest summed";
}

//===----------------------------------------------------------------------===//
// Type constraints shared by the operations.
//===----------------------------------------------------------------------===//

/// Activations and expert weights: f32, bf16 or f16.
defvar MoE_FloatElts = [F32, BF16, F16];
def MoE_ActTensor : TensorRankOf<MoE_FloatElts, [2]>;
def MoE_Weight1D : TensorRankOf<MoE_FloatElts, [1]>;
def MoE_Weight2D : TensorRankOf<MoE_FloatElts, [2]>;
def MoE_Weight3D : TensorRankOf<MoE_FloatElts, [3]>;
/// Expert buffers: padded [E, N, D] or packed [R, D].
def MoE_BufferTensor : TensorRankOf<MoE_FloatElts, [2, 3]>;
def MoE_F32Matrix : TensorRankOf<[F32], [2]>;
def MoE_F32Vector : TensorRankOf<[F32], [1]>;
def MoE_F32Scalar : TensorRankOf<[F32], [0]>;
def MoE_I64Scalar : TensorRankOf<[I64], [0]>;
def MoE_I64Vector : TensorRankOf<[I64], [1]>;
def MoE_I64Matrix : TensorRankOf<[I64], [2]>;
def MoE_I32Vector : TensorRankOf<[I32], [1]>;
def MoE_RowsTensor : TensorRankOf<MoE_FloatElts, [2]>;
def MoE_IndexMatrix : TensorRankOf<[I32], [2]>;
def MoE_MaskMatrix : TensorRankOf<[I1], [2]>;

/// A 64-bit signless integer attribute read as a signed value, so that a
/// negative size reaches the verifiers as negative.
def MoE_I64Attr : SignlessIntegerAttrBase<I64, "64-bit signless integer attribute"> {
  let returnType = "int64_t";
  let convertFromStorage = "$_self.getValue().getSExtValue()";
}

class MoE_Op<string mnemonic, list<Trait> traits = []>
    : Op<MoE_Dialect, mnemonic, traits>;

#endif // MOE_IR_MOEBASE_TD
