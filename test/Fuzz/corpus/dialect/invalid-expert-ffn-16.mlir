func.func @segment_sizes_mismatch(%b: tensor<4x8x32xf32>, %wi: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>) {
  %o = "moe.expert_ffn"(%b, %wi, %wo) <{activation = #moe<activation relu>, operandSegmentSizes = array<i32: 1, 1, 1, 1, 0>}> : (tensor<4x8x32xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>) -> tensor<4x8x32xf32>
  return
}
