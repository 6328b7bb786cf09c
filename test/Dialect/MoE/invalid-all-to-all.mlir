// Invalid moe.all_to_all: result inference (ranks, split/concat dimensions, divisibility, overflow), static shapes, ODS constraints and the inferred-type check.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @unranked(%b: tensor<*xf32>) {
  // expected-error @+1 {{custom op 'moe.all_to_all' invalid kind of type specified: expected builtin.tensor, but found 'tensor<*xf32>'}}
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<*xf32>
  return
}

// -----

func.func @ranks_zero(%b: tensor<4x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' 'ranks' must be at least 1, got 0}}
  %a = moe.all_to_all %b ranks = 0 split_dim = 0 concat_dim = 1 : tensor<4x8x32xf32>
  return
}

// -----

func.func @ranks_negative(%b: tensor<4x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' 'ranks' must be at least 1, got -2}}
  %a = moe.all_to_all %b ranks = -2 split_dim = 0 concat_dim = 1 : tensor<4x8x32xf32>
  return
}

// -----

func.func @split_dim_too_large(%b: tensor<4x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' 'split_dim' must be in [0, 3) for a rank-3 input, got 3}}
  %a = moe.all_to_all %b ranks = 2 split_dim = 3 concat_dim = 1 : tensor<4x8x32xf32>
  return
}

// -----

func.func @split_dim_negative(%b: tensor<32x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' 'split_dim' must be in [0, 2) for a rank-2 input, got -1}}
  %a = moe.all_to_all %b ranks = 2 split_dim = -1 concat_dim = 1 : tensor<32x32xf32>
  return
}

// -----

func.func @concat_dim_too_large(%b: tensor<32x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' 'concat_dim' must be in [0, 2) for a rank-2 input, got 2}}
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 2 : tensor<32x32xf32>
  return
}

// -----

func.func @concat_dim_negative(%b: tensor<4x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' 'concat_dim' must be in [0, 3) for a rank-3 input, got -3}}
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = -3 : tensor<4x8x32xf32>
  return
}

// -----

func.func @split_not_divisible(%b: tensor<4x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' split dimension 0 (4) must be divisible by ranks (3)}}
  %a = moe.all_to_all %b ranks = 3 split_dim = 0 concat_dim = 1 : tensor<4x8x32xf32>
  return
}

// -----

func.func @concat_overflow(%b: tensor<0x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' concat dimension 1 (8) times ranks (4611686018427387904) overflows a 64-bit dimension size}}
  %a = moe.all_to_all %b ranks = 4611686018427387904 split_dim = 0 concat_dim = 1 : tensor<0x8x32xf32>
  return
}

// -----

func.func @dynamic_input(%b: tensor<?x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' op operand #0 must have a static shape, got 'tensor<?x8x32xf32>'}}
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<?x8x32xf32>
  return
}

// -----

func.func @dynamic_concat_dim(%b: tensor<4x?x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' op operand #0 must have a static shape, got 'tensor<4x?x32xf32>'}}
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x?x32xf32>
  return
}

// -----

func.func @rank_four(%b: tensor<2x4x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' op operand #0 must be 2D/3D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<2x4x8x32xf32>'}}
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<2x4x8x32xf32>
  return
}

// -----

func.func @f64_input(%b: tensor<4x8x32xf64>) {
  // expected-error @+1 {{'moe.all_to_all' op operand #0 must be 2D/3D tensor of 32-bit float or bfloat16 type or 16-bit float values, but got 'tensor<4x8x32xf64>'}}
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x8x32xf64>
  return
}

// -----

func.func @ranks_zero_generic(%b: tensor<4x8x32xf32>) {
  // expected-error @+2 {{'moe.all_to_all' 'ranks' must be at least 1, got 0}}
  // expected-error @+1 {{'moe.all_to_all' op failed to infer returned types}}
  %a = "moe.all_to_all"(%b) <{concat_dim = 1 : i64, ranks = 0 : i64, split_dim = 0 : i64}> : (tensor<4x8x32xf32>) -> tensor<4x8x32xf32>
  return
}

// -----

func.func @split_dim_generic(%b: tensor<4x8x32xf32>) {
  // expected-error @+2 {{'moe.all_to_all' 'split_dim' must be in [0, 3) for a rank-3 input, got 7}}
  // expected-error @+1 {{'moe.all_to_all' op failed to infer returned types}}
  %a = "moe.all_to_all"(%b) <{concat_dim = 1 : i64, ranks = 2 : i64, split_dim = 7 : i64}> : (tensor<4x8x32xf32>) -> tensor<2x16x32xf32>
  return
}

// -----

func.func @missing_concat_dim(%b: tensor<4x8x32xf32>) {
  // expected-error @+1 {{'moe.all_to_all' op requires attribute 'concat_dim'}}
  %a = "moe.all_to_all"(%b) <{ranks = 2 : i64, split_dim = 0 : i64}> : (tensor<4x8x32xf32>) -> tensor<2x16x32xf32>
  return
}

// -----

func.func @inferred_mismatch(%b: tensor<4x8x32xf32>) {
  // expected-error @+2 {{'moe.all_to_all' op failed to infer returned types}}
  // expected-error @+1 {{'moe.all_to_all' op inferred type(s) 'tensor<2x16x32xf32>' are incompatible with return type(s) of operation 'tensor<4x8x32xf32>'}}
  %a = "moe.all_to_all"(%b) <{concat_dim = 1 : i64, ranks = 2 : i64, split_dim = 0 : i64}> : (tensor<4x8x32xf32>) -> tensor<4x8x32xf32>
  return
}

// -----

func.func @all_reduce_no_ranks(%c: tensor<8xi64>) {
  // expected-error @+1 {{'moe.all_reduce' op 'ranks' must be at least 1, got 0}}
  %r = moe.all_reduce %c ranks = 0 : tensor<8xi64>
  return
}

// -----

func.func @all_reduce_bf16(%c: tensor<8xbf16>) {
  // expected-error @+1 {{'moe.all_reduce' op sums f32, f64, i32 or i64 elements, got 'bf16'}}
  %r = moe.all_reduce %c ranks = 2 : tensor<8xbf16>
  return
}

// -----

func.func @rank_zero() {
  // expected-error @+1 {{'moe.rank' op 'ranks' must be at least 1, got 0}}
  %r = moe.rank ranks = 0
  return
}

// -----

func.func @gather_no_ranks(%e: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.all_gather' needs a ranked input of rank >= 1 and 'ranks' >= 1}}
  %a = moe.all_gather %e ranks = 0 : tensor<8x2xi32>
  return
}
