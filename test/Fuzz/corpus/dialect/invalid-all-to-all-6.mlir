func.func @concat_dim_negative(%b: tensor<4x8x32xf32>) {
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = -3 : tensor<4x8x32xf32>
  return
}
