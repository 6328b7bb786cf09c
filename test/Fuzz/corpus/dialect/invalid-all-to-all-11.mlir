func.func @rank_four(%b: tensor<2x4x8x32xf32>) {
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<2x4x8x32xf32>
  return
}
