func.func @split_dim_negative(%b: tensor<32x32xf32>) {
  %a = moe.all_to_all %b ranks = 2 split_dim = -1 concat_dim = 1 : tensor<32x32xf32>
  return
}
