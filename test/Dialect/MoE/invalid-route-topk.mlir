// Invalid moe.route and moe.top_k: result inference, verifier rules, ODS type constraints and the inferred-type check.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @route_input_rank(%x: tensor<16x32x1xf32>, %r: tensor<4x32xf32>) {
  // expected-error @+1 {{'moe.route' needs a rank-2 input and router}}
  %l, %p, %lse = moe.route %x, %r : tensor<16x32x1xf32>, tensor<4x32xf32>
  return
}

// -----

func.func @route_router_rank(%x: tensor<16x32xf32>, %r: tensor<32xf32>) {
  // expected-error @+1 {{'moe.route' needs a rank-2 input and router}}
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xf32>, tensor<32xf32>
  return
}

// -----

func.func @route_unranked(%x: tensor<*xf32>, %r: tensor<4x32xf32>) {
  // expected-error @+1 {{custom op 'moe.route' invalid kind of type specified: expected builtin.tensor, but found 'tensor<*xf32>'}}
  %l, %p, %lse = moe.route %x, %r : tensor<*xf32>, tensor<4x32xf32>
  return
}

// -----

func.func @route_dynamic_input(%x: tensor<?x32xf32>, %r: tensor<4x32xf32>) {
  // expected-error @+1 {{'moe.route' op operand #0 must have a static shape, got 'tensor<?x32xf32>'}}
  %l, %p, %lse = moe.route %x, %r : tensor<?x32xf32>, tensor<4x32xf32>
  return
}

// -----

func.func @route_dynamic_router(%x: tensor<16x32xf32>, %r: tensor<?x32xf32>) {
  // expected-error @+1 {{'moe.route' op operand #1 must have a static shape, got 'tensor<?x32xf32>'}}
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xf32>, tensor<?x32xf32>
  return
}

// -----

func.func @route_router_width(%x: tensor<16x32xf32>, %r: tensor<4x16xf32>) {
  // expected-error @+1 {{'moe.route' op 'router' must have shape [4, 32] (E, D), got [4, 16]}}
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xf32>, tensor<4x16xf32>
  return
}

// -----

func.func @route_i32_input(%x: tensor<16x32xi32>, %r: tensor<4x32xf32>) {
  // expected-error @+1 {{'moe.route' op operand #0 must be 2D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<16x32xi32>'}}
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xi32>, tensor<4x32xf32>
  return
}

// -----

func.func @route_f64_router(%x: tensor<16x32xf32>, %r: tensor<4x32xf64>) {
  // expected-error @+1 {{'moe.route' op operand #1 must be 2D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x32xf64>'}}
  %l, %p, %lse = moe.route %x, %r : tensor<16x32xf32>, tensor<4x32xf64>
  return
}

// -----

func.func @route_non_tensor(%x: f32, %r: tensor<4x32xf32>) {
  // expected-error @+1 {{'moe.route' op operand #0 must be 2D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'f32'}}
  %0:3 = "moe.route"(%x, %r) : (f32, tensor<4x32xf32>) -> (tensor<16x4xf32>, tensor<16x4xf32>, tensor<16xf32>)
  return
}

// -----

func.func @route_dynamic_result(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>) {
  // expected-error @+1 {{'moe.route' op result #2 must have a static shape, got 'tensor<?xf32>'}}
  %0:3 = "moe.route"(%x, %r) : (tensor<16x32xf32>, tensor<4x32xf32>) -> (tensor<16x4xf32>, tensor<16x4xf32>, tensor<?xf32>)
  return
}

// -----

func.func @route_bf16_result(%x: tensor<16x32xbf16>, %r: tensor<4x32xbf16>) {
  // expected-error @+1 {{'moe.route' op result #0 must be 2D tensor of 32-bit float values, but got 'tensor<16x4xbf16>'}}
  %0:3 = "moe.route"(%x, %r) : (tensor<16x32xbf16>, tensor<4x32xbf16>) -> (tensor<16x4xbf16>, tensor<16x4xf32>, tensor<16xf32>)
  return
}

// -----

func.func @route_inferred_mismatch(%x: tensor<16x32xbf16>, %r: tensor<4x32xf32>) {
  // expected-error @+2 {{'moe.route' op failed to infer returned types}}
  // expected-error @+1 {{'moe.route' op inferred type(s) 'tensor<16x4xf32>', 'tensor<16x4xf32>', 'tensor<16xf32>' are incompatible with return type(s) of operation 'tensor<16x8xf32>', 'tensor<16x4xf32>', 'tensor<16xf32>'}}
  %0:3 = "moe.route"(%x, %r) : (tensor<16x32xbf16>, tensor<4x32xf32>) -> (tensor<16x8xf32>, tensor<16x4xf32>, tensor<16xf32>)
  return
}

// -----

func.func @route_inferred_lse(%x: tensor<16x32xbf16>, %r: tensor<4x32xf32>) {
  // expected-error @+2 {{'moe.route' op failed to infer returned types}}
  // expected-error @+1 {{'moe.route' op inferred type(s) 'tensor<16x4xf32>', 'tensor<16x4xf32>', 'tensor<16xf32>' are incompatible with return type(s) of operation 'tensor<16x4xf32>', 'tensor<16x4xf32>', 'tensor<4xf32>'}}
  %0:3 = "moe.route"(%x, %r) : (tensor<16x32xbf16>, tensor<4x32xf32>) -> (tensor<16x4xf32>, tensor<16x4xf32>, tensor<4xf32>)
  return
}

// -----

func.func @top_k_probs_rank(%p: tensor<16xf32>) {
  // expected-error @+1 {{'moe.top_k' needs rank-2 probabilities and 'k'}}
  %e, %g = moe.top_k %p k = 2 : tensor<16xf32>
  return
}

// -----

func.func @top_k_negative_k(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.top_k' 'k' must be between 1 and the number of experts (4), got -1}}
  %e, %g = moe.top_k %p k = -1 : tensor<16x4xf32>
  return
}

// -----

func.func @top_k_int64_min_k(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.top_k' 'k' must be between 1 and the number of experts (4), got -9223372036854775808}}
  %e, %g = moe.top_k %p k = -9223372036854775808 : tensor<16x4xf32>
  return
}

// -----

func.func @top_k_negative_k_generic(%p: tensor<16x4xf32>) {
  // The verifier runs before the inferred-type check in the generic form.
  // expected-error @+1 {{'moe.top_k' op 'k' must be between 1 and the number of experts (4), got -2}}
  %0:2 = "moe.top_k"(%p) <{k = -2 : i64}> : (tensor<16x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}

// -----

func.func @top_k_dynamic(%p: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.top_k' op operand #0 must have a static shape, got 'tensor<?x4xf32>'}}
  %e, %g = moe.top_k %p k = 2 : tensor<?x4xf32>
  return
}

// -----

func.func @top_k_zero(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.top_k' op 'k' must be between 1 and the number of experts (4), got 0}}
  %e, %g = moe.top_k %p k = 0 : tensor<16x4xf32>
  return
}

// -----

func.func @top_k_above_experts(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.top_k' op 'k' must be between 1 and the number of experts (4), got 5}}
  %e, %g = moe.top_k %p k = 5 normalize : tensor<16x4xf32>
  return
}

// -----

func.func @top_k_bf16_probs(%p: tensor<16x4xbf16>) {
  // expected-error @+1 {{'moe.top_k' op operand #0 must be 2D tensor of 32-bit float values, but got 'tensor<16x4xbf16>'}}
  %e, %g = moe.top_k %p k = 2 : tensor<16x4xbf16>
  return
}

// -----

func.func @top_k_missing_k(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.top_k' op requires attribute 'k'}}
  %0:2 = "moe.top_k"(%p) : (tensor<16x4xf32>) -> (tensor<16x2xi32>, tensor<16x2xf32>)
  return
}

// -----

func.func @top_k_inferred_mismatch(%p: tensor<16x4xf32>) {
  // expected-error @+2 {{'moe.top_k' op failed to infer returned types}}
  // expected-error @+1 {{'moe.top_k' op inferred type(s) 'tensor<16x2xi32>', 'tensor<16x2xf32>' are incompatible with return type(s) of operation 'tensor<16x3xi32>', 'tensor<16x3xf32>'}}
  %0:2 = "moe.top_k"(%p) <{k = 2 : i64}> : (tensor<16x4xf32>) -> (tensor<16x3xi32>, tensor<16x3xf32>)
  return
}
