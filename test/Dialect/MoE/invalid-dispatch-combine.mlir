// Invalid moe.dispatch and moe.combine: every verifier rule, combine's result inference, ODS type constraints and the inferred-type check.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @dispatch_dynamic_input(%x: tensor<?x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op operand #0 must have a static shape, got 'tensor<?x32xf32>'}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<?x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x8x32xf32>
  return
}

// -----

func.func @dispatch_dynamic_buffer(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op result #0 must have a static shape, got 'tensor<4x?x32xf32>'}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x?x32xf32>
  return
}

// -----

func.func @dispatch_slots_shape(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x1xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op 'slots' must have the shape of 'experts' [16, 2], got [16, 1]}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x1xi32>, tensor<16x2xi1> -> tensor<4x8x32xf32>
  return
}

// -----

func.func @dispatch_keep_shape(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<8x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op 'keep' must have the shape of 'experts' [16, 2], got [8, 2]}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<8x2xi1> -> tensor<4x8x32xf32>
  return
}

// -----

func.func @dispatch_rows_per_token(%x: tensor<16x32xf32>, %e: tensor<8x2xi32>, %s: tensor<8x2xi32>, %k: tensor<8x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op 'experts' must have one row per token (16), got 8}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<8x2xi32>, tensor<8x2xi32>, tensor<8x2xi1> -> tensor<4x8x32xf32>
  return
}

// -----

func.func @dispatch_buffer_element_type(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op buffer element type 'bf16' differs from the input element type 'f32'}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x8x32xbf16>
  return
}

// -----

func.func @dispatch_buffer_width(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op buffer rows must have the input's width (32), got 'tensor<4x8x16xf32>'}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x8x16xf32>
  return
}

// -----

func.func @dispatch_packed_rows(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op a packed buffer must have T·k = 32 rows, got 16}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<16x32xf32>
  return
}

// -----

func.func @dispatch_padded_no_experts(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op a padded buffer needs at least one expert}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<0x8x32xf32>
  return
}

// -----

func.func @dispatch_keep_i8(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi8>) {
  // expected-error @+1 {{'moe.dispatch' op operand #3 must be 2D tensor of 1-bit signless integer values, but got 'tensor<16x2xi8>'}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi8> -> tensor<4x8x32xf32>
  return
}

// -----

func.func @dispatch_buffer_rank(%x: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op result #0 must be 2D/3D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<2x4x8x32xf32>'}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<2x4x8x32xf32>
  return
}

// -----

func.func @dispatch_f64_input(%x: tensor<16x32xf64>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.dispatch' op operand #0 must be 2D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<16x32xf64>'}}
  %b = moe.dispatch %x, %e, %s, %k : tensor<16x32xf64>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1> -> tensor<4x8x32xf64>
  return
}

// -----

func.func @combine_experts_rank(%b: tensor<4x8x32xf32>, %e: tensor<16xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' needs a ranked buffer and rank-2 experts}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x8x32xf32>, tensor<16xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  return
}

// -----

func.func @combine_scalar_buffer(%b: tensor<f32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' needs a ranked buffer and rank-2 experts}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<f32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  return
}

// -----

func.func @combine_dynamic_buffer(%b: tensor<4x?x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op operand #0 must have a static shape, got 'tensor<4x?x32xf32>'}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x?x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  return
}

// -----

func.func @combine_dynamic_width(%b: tensor<4x8x?xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op operand #0 must have a static shape, got 'tensor<4x8x?xf32>'}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x8x?xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  return
}

// -----

func.func @combine_slots_shape(%b: tensor<4x8x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x3xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op 'slots' must have the shape of 'experts' [16, 2], got [16, 3]}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x8x32xf32>, tensor<16x2xi32>, tensor<16x3xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  return
}

// -----

func.func @combine_keep_shape(%b: tensor<4x8x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<2x16xi1>, %g: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op 'keep' must have the shape of 'experts' [16, 2], got [2, 16]}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x8x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<2x16xi1>, tensor<16x2xf32>
  return
}

// -----

func.func @combine_gates_shape(%b: tensor<4x8x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.combine' op 'gates' must have the shape of 'experts' [16, 2], got [16, 4]}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x8x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x4xf32>
  return
}

// -----

func.func @combine_packed_rows(%b: tensor<16x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xf32>) {
  // expected-error @+1 {{'moe.combine' op a packed buffer must have T·k = 32 rows, got 16}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<16x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>
  return
}

// -----

func.func @combine_bf16_gates(%b: tensor<4x8x32xf32>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xbf16>) {
  // expected-error @+1 {{'moe.combine' op operand #4 must be 2D tensor of 32-bit float values, but got 'tensor<16x2xbf16>'}}
  %y = moe.combine %b, %e, %s, %k, %g : tensor<4x8x32xf32>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xbf16>
  return
}

// -----

func.func @combine_inferred_mismatch(%b: tensor<4x8x32xbf16>, %e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>, %g: tensor<16x2xf32>) {
  // expected-error @+2 {{'moe.combine' op failed to infer returned types}}
  // expected-error @+1 {{'moe.combine' op inferred type(s) 'tensor<16x32xbf16>' are incompatible with return type(s) of operation 'tensor<16x32xf32>'}}
  %y = "moe.combine"(%b, %e, %s, %k, %g) : (tensor<4x8x32xbf16>, tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>) -> tensor<16x32xf32>
  return
}
