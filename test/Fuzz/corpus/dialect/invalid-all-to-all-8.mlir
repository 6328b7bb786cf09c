func.func @concat_overflow(%b: tensor<0x8x32xf32>) {
  %a = moe.all_to_all %b ranks = 4611686018427387904 split_dim = 0 concat_dim = 1 : tensor<0x8x32xf32>
  return
}
