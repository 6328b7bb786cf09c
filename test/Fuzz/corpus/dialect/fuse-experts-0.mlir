func.func @swiglu(%x: tensor<16x32xf32>, %r: tensor<4x32xf32>,
    %wi: tensor<4x32x64xf32>, %wg: tensor<4x32x64xf32>, %wo: tensor<4x64x32xf32>)
    -> (tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo)
      top_k 2 activation swiglu normalize_gates capacity_factor 1.25
      group_size 8 priority position
      : tensor<16x32xf32>, tensor<4x32xf32>, tensor<4x32x64xf32>, tensor<4x32x64xf32>, tensor<4x64x32xf32>
  return %y, %tpe, %d, %lb, %z : tensor<16x32xf32>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
