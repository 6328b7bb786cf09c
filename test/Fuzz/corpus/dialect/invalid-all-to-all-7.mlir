func.func @split_not_divisible(%b: tensor<4x8x32xf32>) {
  %a = moe.all_to_all %b ranks = 3 split_dim = 0 concat_dim = 1 : tensor<4x8x32xf32>
  return
}
