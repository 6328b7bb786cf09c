func.func @unranked(%b: tensor<*xf32>) {
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<*xf32>
  return
}
