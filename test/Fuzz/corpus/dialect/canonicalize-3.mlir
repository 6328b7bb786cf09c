func.func @whole_call_group_all_experts(%x: tensor<16x4xf32>, %r: tensor<4x4xf32>,
    %wi: tensor<4x4x8xf32>, %wo: tensor<4x8x4xf32>) -> tensor<16x4xf32> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 4 activation gelu normalize_gates capacity_factor 1.0 group_size 16 priority position
      : tensor<16x4xf32>, tensor<4x4xf32>, tensor<4x4x8xf32>, tensor<4x8x4xf32>
  return %y : tensor<16x4xf32>
}
