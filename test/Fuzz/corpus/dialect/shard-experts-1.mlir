func.func @gated(%x: tensor<4x8xbf16>, %r: tensor<4x8xbf16>, %wi: tensor<4x8x24xbf16>, %wg: tensor<4x8x24xbf16>, %wo: tensor<4x24x8xbf16>) -> tensor<4x8xbf16> {
  %y, %t, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo) top_k 1 activation swiglu expert_capacity 1 group_size 2 priority batch_prioritized
      : tensor<4x8xbf16>, tensor<4x8xbf16>, tensor<4x8x24xbf16>, tensor<4x8x24xbf16>, tensor<4x24x8xbf16>
  return %y : tensor<4x8xbf16>
}
