func.func @dropless_gated(%x: tensor<6x16xbf16>, %r: tensor<8x16xbf16>,
    %wi: tensor<8x16x24xbf16>, %wg: tensor<8x16x24xbf16>, %wo: tensor<8x24x16xbf16>)
    -> tensor<6x16xbf16> {
  %y, %tpe, %d, %lb, %z = moe.layer %x router(%r) w_in(%wi) w_gate(%wg) w_out(%wo)
      top_k 2 activation swiglu normalize_gates priority position
      : tensor<6x16xbf16>, tensor<8x16xbf16>, tensor<8x16x24xbf16>, tensor<8x16x24xbf16>, tensor<8x24x16xbf16>
  return %y : tensor<6x16xbf16>
}
