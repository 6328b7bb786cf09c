func.func @split_dim_too_large(%b: tensor<4x8x32xf32>) {
  %a = moe.all_to_all %b ranks = 2 split_dim = 3 concat_dim = 1 : tensor<4x8x32xf32>
  return
}
