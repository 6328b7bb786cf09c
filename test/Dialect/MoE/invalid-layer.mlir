// Invalid moe.layer: every verifier and result-inference rule, ODS operand and attribute constraints, and the inferred-type check.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @input_rank(%x: tensor<16xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' needs a rank-2 input and router}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @router_rank(%x: tensor<16x32xf32>, %r: tensor<4x32x1xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' needs a rank-2 input and router}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32x1xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @dynamic_input(%x: tensor<?x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op operand #0 must have a static shape, got 'tensor<?x32xf32>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<?x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @dynamic_w_out(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x?x32xf32>) {
  // expected-error @+1 {{'moe.layer' op operand #3 must have a static shape, got 'tensor<4x?x32xf32>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x?x32xf32>
  return
}

// -----

func.func @no_tokens(%x: tensor<0x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op needs at least one token, one feature and one expert, got input 'tensor<0x32xf32>' and router 'tensor<4x32xf32>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<0x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @no_features(%x: tensor<16x0xf32>, %r: tensor<4x0xf32>, %wi: tensor<4x0x64xf32>, %wo: tensor<4x64x0xf32>) {
  // expected-error @+1 {{'moe.layer' op needs at least one token, one feature and one expert, got input 'tensor<16x0xf32>' and router 'tensor<4x0xf32>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x0xf32>, tensor<4x0xf32>, tensor<4x0x64xf32>, tensor<4x64x0xf32>
  return
}

// -----

func.func @no_experts(%x: tensor<16x32xf32>, %r: tensor<0x32xf32>, %wi: tensor<0x32x64xf32>, %wo: tensor<0x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op needs at least one token, one feature and one expert, got input 'tensor<16x32xf32>' and router 'tensor<0x32xf32>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 1 activation relu priority position : tensor<16x32xf32>, tensor<0x32xf32>, tensor<0x32x64xf32>, tensor<0x64x32xf32>
  return
}

// -----

func.func @router_width(%x: tensor<16x32xf32>, %r: tensor<4x16xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'router' must have shape [4, 32] (E, D), got [4, 16]}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x16xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_in_experts(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<2x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'w_in' must have shape [4, 32, 64] (E, D, F), got [2, 32, 64]}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<2x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_in_model(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x16x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'w_in' must have shape [4, 32, 64] (E, D, F), got [4, 16, 64]}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x16x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_out_shape(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x32x64xf32>) {
  // expected-error @+1 {{'moe.layer' op 'w_out' must have shape [4, 64, 32] (E, F, D), got [4, 32, 64]}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>
  return
}

// -----

func.func @gated_without_w_gate(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op activation 'swiglu' is gated and needs a 'w_gate' operand}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation swiglu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_gate_not_gated(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'w_gate' is only valid with a gated activation (geglu, swiglu), not 'gelu'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) top_k 2 activation gelu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_gate_shape(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x48xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'w_gate' must have shape [4, 32, 64] (E, D, F), got [4, 32, 48]}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) top_k 2 activation geglu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x32x48xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @w_out_element_type(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xbf16>) {
  // expected-error @+1 {{'moe.layer' op 'w_out' element type 'bf16' differs from the 'w_in' element type 'f32'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xbf16>
  return
}

// -----

func.func @w_gate_element_type(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xbf16>, %wg: tensor<4x32x64xf16>, %wo: tensor<4x64x32xbf16>) {
  // expected-error @+1 {{'moe.layer' op 'w_gate' element type 'f16' differs from the 'w_in' element type 'bf16'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) top_k 2 activation swiglu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xbf16>, tensor<4x32x64xf16>, tensor<4x64x32xbf16>
  return
}

// -----

func.func @zero_hidden(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x0xf32>, %wo: tensor<4x0x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'w_in' must have a positive hidden size F, got 'tensor<4x32x0xf32>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x0xf32>, tensor<4x0x32xf32>
  return
}

// -----

func.func @top_k_zero(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'top_k' must be between 1 and the number of experts (4), got 0}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 0 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @top_k_above_experts(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'top_k' must be between 1 and the number of experts (4), got 5}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 5 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @top_k_zero_generic(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'top_k' must be between 1 and the number of experts (4), got -3}}
  %0:5 = "moe.layer"(%x, %r, %wi, %wo) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 1, 0, 0, 0, 0>, activation = #moe<activation relu>, top_k = -3 : i64, min_capacity = 1 : i64, priority = #moe<priority position>}> : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @capacity_factor_zero(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'capacity_factor' must be a positive finite number, got 0}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu capacity_factor 0.0 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @capacity_factor_negative(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'capacity_factor' must be a positive finite number, got -1.5}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu capacity_factor -1.5 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @capacity_factor_nan(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'capacity_factor' must be a positive finite number, got nan}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu capacity_factor 0x7FF8000000000000 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @capacity_factor_inf(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'capacity_factor' must be a positive finite number, got INF}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu capacity_factor 0x7FF0000000000000 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @capacity_both(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'capacity_factor' and 'expert_capacity' are exclusive: 'expert_capacity' fixes the capacity}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu capacity_factor 1.0 expert_capacity 4 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @expert_capacity_zero(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'expert_capacity' must be positive, got 0}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu expert_capacity 0 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @min_capacity_zero(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'min_capacity' must be at least 1, got 0}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu capacity_factor 1.0 min_capacity 0 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @min_capacity_without_factor(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'min_capacity' only applies with 'capacity_factor'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu expert_capacity 4 min_capacity 2 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @group_size_zero(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'group_size' must be positive, got 0}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu group_size 0 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @group_size_not_dividing(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op 'group_size' (5) must divide the number of tokens (16)}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu group_size 5 priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @i32_input(%x: tensor<16x32xi32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op operand #0 must be 2D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<16x32xi32>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xi32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @f64_weights(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf64>, %wo: tensor<4x64x32xf64>) {
  // expected-error @+1 {{'moe.layer' op operand #2 must be 3D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x32x64xf64>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf64>, tensor<4x64x32xf64>
  return
}

// -----

func.func @w_in_rank(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op operand #2 must be 3D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<32x64xf32>'}}
  %y:5 = moe.layer %x router(%r) w_in(%wi) w_out(%wo) top_k 2 activation relu priority position : tensor<16x32xf32>, tensor<4x32xf32>, tensor<32x64xf32>, tensor<4x64x32xf32>
  return
}

// -----

func.func @top_k_i32(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op attribute 'top_k' failed to satisfy constraint: 64-bit signless integer attribute}}
  %0:5 = "moe.layer"(%x, %r, %wi, %wo) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 1, 0, 0, 0, 0>, activation = #moe<activation relu>, top_k = 2 : i32, min_capacity = 1 : i64, priority = #moe<priority position>}> : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @missing_activation(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op requires attribute 'activation'}}
  %0:5 = "moe.layer"(%x, %r, %wi, %wo) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 1, 0, 0, 0, 0>, top_k = 2 : i64}> : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @inferred_tokens_per_expert(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+2 {{'moe.layer' op failed to infer returned types}}
  // expected-error @+1 {{'moe.layer' op inferred type(s) 'tensor<16x32xf32>', 'tensor<4xi64>', 'tensor<i64>', 'tensor<f32>', 'tensor<f32>' are incompatible with return type(s) of operation 'tensor<16x32xf32>', 'tensor<8xi64>', 'tensor<i64>', 'tensor<f32>', 'tensor<f32>'}}
  %0:5 = "moe.layer"(%x, %r, %wi, %wo) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 1, 0, 0, 0, 0>, activation = #moe<activation relu>, top_k = 2 : i64, min_capacity = 1 : i64, priority = #moe<priority position>}> : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> (tensor<16x32xf32>, tensor<8xi64>, tensor<i64>, tensor<f32>, tensor<f32>)
  return
}

// -----

func.func @inferred_output_type(%x: tensor<16x32xbf16>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+2 {{'moe.layer' op failed to infer returned types}}
  // expected-error @+1 {{'moe.layer' op inferred type(s) 'tensor<16x32xbf16>', 'tensor<4xi64>', 'tensor<i64>', 'tensor<f32>', 'tensor<f32>' are incompatible with return type(s) of operation 'tensor<16x32xf32>', 'tensor<4xi64>', 'tensor<i64>', 'tensor<f32>', 'tensor<f32>'}}
  %0:5 = "moe.layer"(%x, %r, %wi, %wo) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 1, 0, 0, 0, 0>, activation = #moe<activation relu>, top_k = 2 : i64, min_capacity = 1 : i64, priority = #moe<priority position>}> : (tensor<16x32xbf16>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>)
  return
}

// -----

// The verifier runs before the inferred-type check, so a dynamic result type
// is reported by the static-shape rule.
func.func @dynamic_result(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  // expected-error @+1 {{'moe.layer' op result #1 must have a static shape, got 'tensor<?xi64>'}}
  %0:5 = "moe.layer"(%x, %r, %wi, %wo) <{operandSegmentSizes = array<i32: 1, 1, 0, 1, 0, 1, 0, 0, 0, 0>, activation = #moe<activation relu>, top_k = 2 : i64, min_capacity = 1 : i64, priority = #moe<priority position>}> : (tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> (tensor<16x32xf32>, tensor<?xi64>, tensor<i64>, tensor<f32>, tensor<f32>)
  return
}
