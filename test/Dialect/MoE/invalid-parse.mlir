// Parse errors of the moe custom assembly: unknown activation and priority keywords, non-keyword values, bad enum attributes in the generic form.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @layer_unknown_activation(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{unknown activation 'tanh' (expected relu, gelu, gelu_tanh, silu, geglu or swiglu)}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation tanh priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @layer_activation_case(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{unknown activation 'SwiGLU' (expected relu, gelu, gelu_tanh, silu, geglu or swiglu)}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation SwiGLU priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @expert_ffn_unknown_activation(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{unknown activation 'gelu_erf' (expected relu, gelu, gelu_tanh, silu, geglu or swiglu)}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation gelu_erf : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @expert_ffn_activation_not_keyword(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{expected valid keyword}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation "relu" : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @layer_unknown_priority(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{unknown priority 'random' (expected position or batch_prioritized)}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority random : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @assign_slots_unknown_priority(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{unknown priority 'batch_priority' (expected position or batch_prioritized)}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = batch_priority : tensor<16x2xi32>
  return
}

// -----

func.func @assign_slots_priority_not_keyword(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{expected valid keyword}}
  %s, %k, %c = moe.assign_slots %e num_experts = 4 group_size = 8 priority = 1 : tensor<16x2xi32>
  return
}

// -----

func.func @layer_missing_priority(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{expected 'priority'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @generic_unknown_activation(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+2 {{expected ::mlir::moe::Activation to be one of: relu, gelu, gelu_tanh, silu, geglu, swiglu}}
  // expected-error @+1 {{failed to parse MoE_ActivationAttr parameter 'value' which is to be a `::mlir::moe::Activation`}}
  %o = "moe.expert_ffn"(%b, %wi, %wo) <{activation = #moe<activation tanh>, operandSegmentSizes = array<i32: 1, 1, 0, 1, 0>}> : (tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x8x32xf32>
  return
}

// -----

func.func @generic_priority_wrong_kind(%e: tensor<16x2xi32>) {
  // expected-error @+1 {{Invalid attribute `priority` in property conversion: #moe<activation relu>}}
  %0:3 = "moe.assign_slots"(%e) <{group_size = 8 : i64, num_experts = 4 : i64, priority = #moe<activation relu>}> : (tensor<16x2xi32>) -> (tensor<16x2xi32>, tensor<16x2xi1>, tensor<4xi64>)
  return
}
