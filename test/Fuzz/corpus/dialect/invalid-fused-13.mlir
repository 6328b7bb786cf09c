func.func @gmm_gate_needs_gated(%x: tensor<16x32xf32>, %w: tensor<4x32x64xf32>, %c: tensor<4xi64>) {
  %h = moe.grouped_matmul %x weight(%w) gate_weight(%w) counts(%c) activation relu
      : tensor<16x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4xi64> -> tensor<16x64xf32>
  return
}
