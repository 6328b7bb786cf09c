// Invalid moe.expert_ffn: every verifier rule (weights, gating, packed/padded buffers and counts), ODS constraints, operand segments and the inferred-type check.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @dynamic_buffer(%b: tensor<4x?x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand #0 must have a static shape, got 'tensor<4x?x32xf32>'}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation relu : tensor<4x?x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @dynamic_counts(%b: tensor<32x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>, %c: tensor<?xi64>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand #3 must have a static shape, got 'tensor<?xi64>'}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) counts(%c) activation relu : tensor<32x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<?xi64>
  return
}

// -----

func.func @w_in_model(%b: tensor<4x8x32xf32>, %wi: tensor<4x16x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op 'w_in' must have shape [4, 32, 64] (E, D, F), got [4, 16, 64]}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation relu : tensor<4x8x32xf32>, tensor<4x16x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_out_experts(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<2x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op 'w_out' must have shape [4, 64, 32] (E, F, D), got [2, 64, 32]}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation relu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<2x64x32xf32>
  return
}

// -----

func.func @gated_without_w_gate(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op activation 'geglu' is gated and needs a 'w_gate' operand}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation geglu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_gate_not_gated(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op 'w_gate' is only valid with a gated activation (geglu, swiglu), not 'silu'}}
  %o = moe.expert_ffn %b w_in(%wi) w_gate(%wg) w_out(%wo) activation silu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_gate_shape(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wg: tensor<4x64x32xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op 'w_gate' must have shape [4, 32, 64] (E, D, F), got [4, 64, 32]}}
  %o = moe.expert_ffn %b w_in(%wi) w_gate(%wg) w_out(%wo) activation swiglu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_out_element_type(%b: tensor<4x8x32xf16>, %wi: tensor<4x32x64xf16>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op 'w_out' element type 'f32' differs from the 'w_in' element type 'f16'}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation gelu : tensor<4x8x32xf16>, tensor<4x32x64xf16>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_gate_element_type(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x64xbf16>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op 'w_gate' element type 'bf16' differs from the 'w_in' element type 'f32'}}
  %o = moe.expert_ffn %b w_in(%wi) w_gate(%wg) w_out(%wo) activation swiglu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xbf16>, tensor<4x64x32xf32>
  return
}

// -----

func.func @packed_without_counts(%b: tensor<32x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op a packed [R, D] buffer needs the per-expert row 'counts' operand}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation relu : tensor<32x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @packed_counts_shape(%b: tensor<32x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>, %c: tensor<8xi64>) {
  // expected-error @+1 {{'moe.expert_ffn' op 'counts' must have shape [4] (E), got [8]}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) counts(%c) activation relu : tensor<32x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<8xi64>
  return
}

// -----

func.func @padded_with_counts(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.expert_ffn' op 'counts' only applies to a packed [R, D] buffer}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) counts(%c) activation relu : tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>
  return
}

// -----

func.func @padded_experts(%b: tensor<2x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op a padded buffer must have one part per expert (4), got 2}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation relu : tensor<2x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @counts_i32(%b: tensor<32x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>, %c: tensor<4xi32>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand #3 must be 1D tensor of 64-bit signless integer values, but got 'tensor<4xi32>'}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) counts(%c) activation relu : tensor<32x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>, tensor<4xi32>
  return
}

// -----

func.func @buffer_rank_one(%b: tensor<32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand #0 must be 2D/3D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<32xf32>'}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation relu : tensor<32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @f64_buffer(%b: tensor<4x8x32xf64>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand #0 must be 2D/3D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x8x32xf64>'}}
  %o = moe.expert_ffn %b w_in(%wi) w_out(%wo) activation relu : tensor<4x8x32xf64>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @segment_sizes_mismatch(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand count (3) does not match with the total size (4) specified in attribute 'operandSegmentSizes'}}
  %o = "moe.expert_ffn"(%b, %wi, %wo) <{activation = #moe<activation relu>, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>}> : (tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x8x32xf32>
  return
}

// -----

func.func @segment_sizes_missing(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand count (3) does not match with the total size (0) specified in attribute 'operandSegmentSizes'}}
  %o = "moe.expert_ffn"(%b, %wi, %wo) <{activation = #moe<activation relu>}> : (tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x8x32xf32>
  return
}

// -----

func.func @segment_w_gate_twice(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.expert_ffn' op operand group starting at #2 requires 0 or 1 element, but found 2}}
  %o = "moe.expert_ffn"(%b, %wi, %wi, %wi, %wo) <{activation = #moe<activation swiglu>, operandSegmentSizes = array<i32: 1, 1, 2, 1, 0>}> : (tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x8x32xf32>
  return
}

// -----

func.func @inferred_mismatch(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+2 {{'moe.expert_ffn' op failed to infer returned types}}
  // expected-error @+1 {{'moe.expert_ffn' op inferred type(s) 'tensor<4x8x32xf32>' are incompatible with return type(s) of operation 'tensor<4x8x32xbf16>'}}
  %o = "moe.expert_ffn"(%b, %wi, %wo) <{activation = #moe<activation relu>, operandSegmentSizes = array<i32: 1, 1, 0, 1, 0>}> : (tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x8x32xbf16>
  return
}
