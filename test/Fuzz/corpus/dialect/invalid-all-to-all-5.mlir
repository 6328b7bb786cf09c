func.func @concat_dim_too_large(%b: tensor<32x32xf32>) {
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 2 : tensor<32x32xf32>
  return
}
