// Invalid moe.route_rows / moe.sort_by_expert / moe.grouped_matmul / moe.place_rows_buffers:
// every rule of their verifiers.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @route_rows_k(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.route_rows' 'k' must be between 1 and the number of experts (4), got 5}}
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 5 group_size = 16 priority = position : tensor<16x4xf32>
  return
}

// -----

func.func @route_rows_k0(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.route_rows' 'k' must be between 1 and the number of experts (4), got 0}}
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 0 group_size = 16 priority = position : tensor<16x4xf32>
  return
}

// -----

func.func @route_rows_block(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.route_rows' 'block' must be positive, got 0}}
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 1 group_size = 16 priority = position block = 0 : tensor<16x4xf32>
  return
}

// -----

func.func @route_rows_groups(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.route_rows' op 'group_size' (6) must divide the number of tokens (16)}}
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 1 group_size = 6 priority = position : tensor<16x4xf32>
  return
}

// -----

func.func @route_rows_capacity(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.route_rows' op 'capacity' must be positive, got 0}}
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 1 group_size = 16 capacity = 0 priority = position : tensor<16x4xf32>
  return
}

// -----

func.func @route_rows_dynamic(%p: tensor<?x4xf32>) {
  // expected-error @+1 {{'moe.route_rows' needs static probabilities, got [?, 4]}}
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 1 group_size = 16 priority = position : tensor<?x4xf32>
  return
}

// -----

func.func @route_rows_priority(%p: tensor<16x4xf32>) {
  // expected-error @+1 {{unknown priority 'random' (expected position or batch_prioritized)}}
  %e, %g, %k, %c, %o, %t, %w = moe.route_rows %p k = 1 group_size = 16 priority = random : tensor<16x4xf32>
  return
}

// -----

func.func @sort_slots_shape(%e: tensor<16x2xi32>, %s: tensor<16x1xi32>, %k: tensor<16x2xi1>,
                            %g: tensor<16x2xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.sort_by_expert' op 'slots' must have shape [16, 2] (T, k, as 'experts'), got [16, 1]}}
  %o, %t, %w = moe.sort_by_expert %e, %s, %k, %g, %c
      : tensor<16x2xi32>, tensor<16x1xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<32xi32>, tensor<32xf32>
  return
}

// -----

func.func @sort_block(%e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>,
                      %g: tensor<16x2xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.sort_by_expert' op 'block' must be positive, got 0}}
  %o, %t, %w = moe.sort_by_expert %e, %s, %k, %g, %c block = 0
      : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<32xi32>, tensor<32xf32>
  return
}

// -----

func.func @sort_offsets(%e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>,
                        %g: tensor<16x2xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.sort_by_expert' op 'offsets' must have shape [5] (E + 1), got [4]}}
  %o, %t, %w = moe.sort_by_expert %e, %s, %k, %g, %c
      : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<4xi64>, tensor<32xi32>, tensor<32xf32>
  return
}

// -----

func.func @sort_rows(%e: tensor<16x2xi32>, %s: tensor<16x2xi32>, %k: tensor<16x2xi1>,
                     %g: tensor<16x2xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.sort_by_expert' op 'row_token' must have shape [44] (T·k + E·(block - 1)), got [32]}}
  %o, %t, %w = moe.sort_by_expert %e, %s, %k, %g, %c block = 4
      : tensor<16x2xi32>, tensor<16x2xi32>, tensor<16x2xi1>, tensor<16x2xf32>, tensor<4xi64>
      -> tensor<5xi64>, tensor<32xi32>, tensor<32xf32>
  return
}

// -----

func.func @gmm_depth(%x: tensor<16x16xf32>, %w: tensor<4x32x64xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.grouped_matmul' op 'input' rows must have the weight's depth K = 32, got 16}}
  %h = moe.grouped_matmul %x weight(%w) counts(%c)
      : tensor<16x16xf32>, tensor<4x32x64xf32>, tensor<4xi64> -> tensor<16x64xf32>
  return
}

// -----

func.func @gmm_gated_needs_gate(%x: tensor<16x32xf32>, %w: tensor<4x32x64xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.grouped_matmul' op activation 'swiglu' is gated and needs a 'gate_weight' operand}}
  %h = moe.grouped_matmul %x weight(%w) counts(%c) activation swiglu
      : tensor<16x32xf32>, tensor<4x32x64xf32>, tensor<4xi64> -> tensor<16x64xf32>
  return
}

// -----

func.func @gmm_gate_needs_gated(%x: tensor<16x32xf32>, %w: tensor<4x32x64xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.grouped_matmul' op 'gate_weight' needs a gated activation (geglu, swiglu)}}
  %h = moe.grouped_matmul %x weight(%w) gate_weight(%w) counts(%c) activation relu
      : tensor<16x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4xi64> -> tensor<16x64xf32>
  return
}

// -----

func.func @gmm_gate_type(%x: tensor<16x32xf32>, %w: tensor<4x32x64xf32>, %g: tensor<4x32x64xbf16>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.grouped_matmul' op 'gate_weight' element type 'bf16' differs from the 'weight' element type 'f32'}}
  %h = moe.grouped_matmul %x weight(%w) gate_weight(%g) counts(%c) activation swiglu
      : tensor<16x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xbf16>, tensor<4xi64> -> tensor<16x64xf32>
  return
}

// -----

func.func @gmm_counts(%x: tensor<16x32xf32>, %w: tensor<4x32x64xf32>, %c: tensor<3xi64>) {
  // expected-error @+1 {{'moe.grouped_matmul' op 'counts' must have shape [4] (E), got [3]}}
  %h = moe.grouped_matmul %x weight(%w) counts(%c)
      : tensor<16x32xf32>, tensor<4x32x64xf32>, tensor<3xi64> -> tensor<16x64xf32>
  return
}

// -----

func.func @gmm_offsets(%x: tensor<16x32xf32>, %w: tensor<4x32x64xf32>, %o: tensor<4xi64>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.grouped_matmul' op 'offsets' must have shape [5] (E + 1), got [4]}}
  %h = moe.grouped_matmul %x weight(%w) offsets(%o) counts(%c)
      : tensor<16x32xf32>, tensor<4x32x64xf32>, tensor<4xi64>, tensor<4xi64> -> tensor<16x64xf32>
  return
}

// -----

func.func @gmm_result_rows(%x: tensor<16x32xf32>, %t: tensor<32xi32>, %w: tensor<4x32x64xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.grouped_matmul' op 'result' must have shape [32, 64] (R, N), got [16, 64]}}
  %h = moe.grouped_matmul %x gather(%t) weight(%w) counts(%c)
      : tensor<16x32xf32>, tensor<32xi32>, tensor<4x32x64xf32>, tensor<4xi64> -> tensor<16x64xf32>
  return
}

// -----

func.func @gmm_scatter_rows(%h: tensor<32x64xf32>, %w: tensor<4x64x32xf32>, %c: tensor<4xi64>,
                            %t: tensor<16xi32>, %s: tensor<16xf32>) {
  // expected-error @+1 {{'moe.grouped_matmul' op 'scatter indices' must have shape [32] (the rows R), got [16]}}
  %y = moe.grouped_matmul %h weight(%w) counts(%c) scatter(%t, %s)
      : tensor<32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>, tensor<16xi32>, tensor<16xf32> -> tensor<16x32xf32>
  return
}

// -----

func.func @gmm_scatter_cols(%h: tensor<32x64xf32>, %w: tensor<4x64x32xf32>, %c: tensor<4xi64>,
                            %t: tensor<32xi32>, %s: tensor<32xf32>) {
  // expected-error @+1 {{'moe.grouped_matmul' op result rows must have the weight's N = 32 columns, got 16}}
  %y = moe.grouped_matmul %h weight(%w) counts(%c) scatter(%t, %s)
      : tensor<32x64xf32>, tensor<4x64x32xf32>, tensor<4xi64>, tensor<32xi32>, tensor<32xf32> -> tensor<16x16xf32>
  return
}

// -----

func.func @gmm_dynamic(%x: tensor<?x32xf32>, %w: tensor<4x32x64xf32>, %c: tensor<4xi64>) {
  // expected-error @+1 {{'moe.grouped_matmul' op operand #0 must have a static shape, got 'tensor<?x32xf32>'}}
  %h = moe.grouped_matmul %x weight(%w) counts(%c)
      : tensor<?x32xf32>, tensor<4x32x64xf32>, tensor<4xi64> -> tensor<16x64xf32>
  return
}

// -----

// The buffer form checks what moe.grouped_matmul checks, on its output buffer.
func.func @gmm_buffers_out(%x: memref<16x32xf32>, %w: memref<4x32x64xbf16>, %c: memref<4xi64>, %h: memref<16x32xf32>) {
  // expected-error @+1 {{'moe.grouped_matmul_buffers' op 'result' must have shape [16, 64] (R, N), got [16, 32]}}
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) out(%h)
      : memref<16x32xf32>, memref<4x32x64xbf16>, memref<4xi64>, memref<16x32xf32>
  return
}

// -----

func.func @gmm_buffers_dynamic(%x: memref<?x32xf32>, %w: memref<4x32x64xbf16>, %c: memref<4xi64>, %h: memref<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_matmul_buffers' op needs static shapes, got 'memref<?x32xf32>'}}
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) out(%h)
      : memref<?x32xf32>, memref<4x32x64xbf16>, memref<4xi64>, memref<16x64xf32>
  return
}

// -----

func.func @gmm_buffers_gated(%x: memref<16x32xf32>, %w: memref<4x32x64xbf16>, %c: memref<4xi64>, %h: memref<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_matmul_buffers' op activation 'geglu' is gated and needs a 'gate_weight' operand}}
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) out(%h) activation geglu
      : memref<16x32xf32>, memref<4x32x64xbf16>, memref<4xi64>, memref<16x64xf32>
  return
}

// -----

func.func @gmm_buffers_scatter_bf16(%x: memref<16x32xf32>, %w: memref<4x32x64xbf16>, %c: memref<4xi64>,
                                    %t: memref<16xi32>, %s: memref<16xf32>, %y: memref<8x64xbf16>) {
  // expected-error @+1 {{'moe.grouped_matmul_buffers' op output must be f32 (the scatter adds into it), got 'bf16'}}
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) scatter(%t, %s) out(%y)
      : memref<16x32xf32>, memref<4x32x64xbf16>, memref<4xi64>, memref<16xi32>, memref<16xf32>, memref<8x64xbf16>
  return
}

// -----

func.func @gmm_buffers_unique_no_scatter(%x: memref<16x32xf32>, %w: memref<4x32x64xbf16>, %c: memref<4xi64>, %h: memref<16x64xf32>) {
  // expected-error @+1 {{'moe.grouped_matmul_buffers' op 'unique_targets' needs a scatter}}
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) unique_targets out(%h)
      : memref<16x32xf32>, memref<4x32x64xbf16>, memref<4xi64>, memref<16x64xf32>
  return
}

// -----

// A scatter that stores (unique targets) may write the weights' type, not another.
func.func @gmm_buffers_unique_f16(%x: memref<16x32xf32>, %w: memref<4x32x64xbf16>, %c: memref<4xi64>,
                                  %t: memref<16xi32>, %s: memref<16xf32>, %y: memref<8x64xf16>) {
  // expected-error @+1 {{'moe.grouped_matmul_buffers' op output must be f32 or the weights' type, got 'f16'}}
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) scatter(%t, %s) unique_targets out(%y)
      : memref<16x32xf32>, memref<4x32x64xbf16>, memref<4xi64>, memref<16xi32>, memref<16xf32>, memref<8x64xf16>
  return
}

// -----

func.func @gmm_buffers_out_f16(%x: memref<16x32xf32>, %w: memref<4x32x64xbf16>, %c: memref<4xi64>, %h: memref<16x64xf16>) {
  // expected-error @+1 {{'moe.grouped_matmul_buffers' op output must be f32 or the weights' type, got 'f16'}}
  moe.grouped_matmul_buffers %x weight(%w) counts(%c) out(%h)
      : memref<16x32xf32>, memref<4x32x64xbf16>, memref<4xi64>, memref<16x64xf16>
  return
}

// -----

func.func @place_rows_group(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op 'group_size' (6) must divide the number of tokens (16)}}
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 6
      : memref<16x2xi32>, memref<16x2xf32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<32xf32>
  return
}

// -----

func.func @place_rows_capacity(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op 'capacity' must be positive, got 0}}
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8 capacity = 0
      : memref<16x2xi32>, memref<16x2xf32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<32xf32>
  return
}

// -----

func.func @place_rows_block(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op 'block' must be positive, got 0}}
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8 block = 0
      : memref<16x2xi32>, memref<16x2xf32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<32xf32>
  return
}

// -----

func.func @place_rows_gates(%e: memref<16x2xi32>, %g: memref<16x3xf32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op 'gates' must have shape [16, 2] (T, k, as 'experts'), got [16, 3]}}
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8
      : memref<16x2xi32>, memref<16x3xf32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<32xf32>
  return
}

// -----

func.func @place_rows_keep(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %k: memref<8x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op 'keep' must have shape [16, 2] (T, k, as 'experts'), got [8, 2]}}
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8
      : memref<16x2xi32>, memref<16x2xf32>, memref<8x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<32xf32>
  return
}

// -----

func.func @place_rows_order(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %r: memref<15xi32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op 'order' must have shape [16] (T), got [15]}}
  moe.place_rows_buffers experts(%e) gates(%g) order(%r) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8
      : memref<16x2xi32>, memref<16x2xf32>, memref<15xi32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<32xf32>
  return
}

// -----

func.func @place_rows_offsets(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<4xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op 'offsets' must have shape [5] (E + 1), got [4]}}
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8
      : memref<16x2xi32>, memref<16x2xf32>, memref<16x2xi1>, memref<4xi64>, memref<4xi64>, memref<32xi32>, memref<32xf32>
  return
}

// -----

func.func @place_rows_row_gate(%e: memref<16x2xi32>, %g: memref<16x2xf32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<16xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op 'row_gate' must have shape [32] (R, as 'row_token'), got [16]}}
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8
      : memref<16x2xi32>, memref<16x2xf32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<16xf32>
  return
}

// -----

func.func @place_rows_dynamic(%e: memref<?x2xi32>, %g: memref<16x2xf32>, %k: memref<16x2xi1>, %c: memref<4xi64>, %o: memref<5xi64>, %t: memref<32xi32>, %w: memref<32xf32>) {
  // expected-error @+1 {{'moe.place_rows_buffers' op needs static shapes, got 'memref<?x2xi32>'}}
  moe.place_rows_buffers experts(%e) gates(%g) keep(%k) counts(%c) offsets(%o) rows(%t, %w) group_size = 8
      : memref<?x2xi32>, memref<16x2xf32>, memref<16x2xi1>, memref<4xi64>, memref<5xi64>, memref<32xi32>, memref<32xf32>
  return
}
