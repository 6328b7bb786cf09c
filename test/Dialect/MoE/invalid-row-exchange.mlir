// Invalid moe.exchange_rows / moe.return_rows: ranks, divisibility of the
// experts, the shape of the received counts, row width and element type,
// static shapes and the ODS constraints.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @one_rank(%b: tensor<32x16xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.exchange_rows' op needs at least 2 ranks, got 1 (one rank exchanges nothing)}}
  %r, %n = moe.exchange_rows %b, %c ranks = 1 : tensor<32x16xf32>, tensor<4xi64> -> tensor<32x16xf32>, tensor<1x4xi64>
  return
}

// -----

func.func @experts_not_divisible(%b: tensor<32x16xf32>, %c: tensor<6xi64>) {
  // expected-error @+1 {{'moe.exchange_rows' op 'counts' has 6 experts, which do not divide over 4 ranks}}
  %r, %n = moe.exchange_rows %b, %c ranks = 4 : tensor<32x16xf32>, tensor<6xi64> -> tensor<64x16xf32>, tensor<4x1xi64>
  return
}

// -----

func.func @received_counts_shape(%b: tensor<32x16xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.exchange_rows' op the received counts must be [ranks, E/ranks] = [2, 2], got 'tensor<2x4xi64>'}}
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xf32>, tensor<4xi64> -> tensor<64x16xf32>, tensor<2x4xi64>
  return
}

// -----

func.func @row_width(%b: tensor<32x16xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.exchange_rows' op sends rows of 16 x 'f32' but the result has rows of 8 x 'f32'}}
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xf32>, tensor<4xi64> -> tensor<64x8xf32>, tensor<2x2xi64>
  return
}

// -----

func.func @element_type(%b: tensor<32x16xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.exchange_rows' op sends rows of 16 x 'f32' but the result has rows of 16 x 'bf16'}}
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xf32>, tensor<4xi64> -> tensor<64x16xbf16>, tensor<2x2xi64>
  return
}

// -----

func.func @dynamic_rows(%b: tensor<?x16xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.exchange_rows' op operand #0 must have a static shape, got 'tensor<?x16xf32>'}}
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<?x16xf32>, tensor<4xi64> -> tensor<64x16xf32>, tensor<2x2xi64>
  return
}

// -----

func.func @counts_type(%b: tensor<32x16xf32>, %c: tensor<4xi32>) {
  // expected-error @+1 {{'moe.exchange_rows' op operand #1 must be 1D tensor of 64-bit signless integer values, but got 'tensor<4xi32>'}}
  %r, %n = moe.exchange_rows %b, %c ranks = 2 : tensor<32x16xf32>, tensor<4xi32> -> tensor<64x16xf32>, tensor<2x2xi64>
  return
}

// -----

func.func @return_received_counts(%o: tensor<64x16xf32>, %n: tensor<4x1xi64>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.return_rows' op the received counts must be [ranks, E/ranks] = [2, 2], got 'tensor<4x1xi64>'}}
  %b = moe.return_rows %o, %n, %c ranks = 2 : tensor<64x16xf32>, tensor<4x1xi64>, tensor<4xi64> -> tensor<32x16xf32>
  return
}

// -----

func.func @return_row_width(%o: tensor<64x16xf32>, %n: tensor<2x2xi64>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.return_rows' op sends rows of 16 x 'f32' but the result has rows of 32 x 'f32'}}
  %b = moe.return_rows %o, %n, %c ranks = 2 : tensor<64x16xf32>, tensor<2x2xi64>, tensor<4xi64> -> tensor<32x32xf32>
  return
}

// -----

func.func @return_one_rank(%o: tensor<64x16xf32>, %n: tensor<1x4xi64>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.return_rows' op needs at least 2 ranks, got 1 (one rank exchanges nothing)}}
  %b = moe.return_rows %o, %n, %c ranks = 1 : tensor<64x16xf32>, tensor<1x4xi64>, tensor<4xi64> -> tensor<32x16xf32>
  return
}
