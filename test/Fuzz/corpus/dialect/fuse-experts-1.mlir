func.func @bf16_dropless(%x: tensor<8x16xbf16>, %r: tensor<4x16xf32>,
    %wi: tensor<4x16x24xbf16>, %wo: tensor<4x24x16xbf16>)
    -> (tensor<8x16xbf16>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>) {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_out(%wo)
      top_k 2 activation relu normalize_gates priority position
      : tensor<8x16xbf16>, tensor<4x16xf32>, tensor<4x16x24xbf16>, tensor<4x24x16xbf16>
  return %y, %tpe, %d, %lb, %z : tensor<8x16xbf16>, tensor<4xi64>, tensor<i64>, tensor<f32>, tensor<f32>
}
