func.func @shared_expert(%x: tensor<4x16xbf16>, %y: tensor<4x16xbf16>, %si: tensor<16x24xbf16>,
    %so: tensor<24x16xbf16>, %g: tensor<16xbf16>) -> tensor<4x16xbf16> {
  %o = moe.shared_expert %x, %y w_in(%si) w_out(%so) gate(%g) activation relu
      : tensor<4x16xbf16>, tensor<4x16xbf16>, tensor<16x24xbf16>, tensor<24x16xbf16>, tensor<16xbf16>
  return %o : tensor<4x16xbf16>
}
