func.func @f64_input(%b: tensor<4x8x32xf64>) {
  %a = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x8x32xf64>
  return
}
