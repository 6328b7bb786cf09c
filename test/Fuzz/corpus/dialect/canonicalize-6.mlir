func.func @all_to_all_one_rank(%b: tensor<4x8x16xf32>) -> (tensor<4x8x16xf32>, tensor<2x16x16xf32>) {
  %same = moe.all_to_all %b ranks = 1 split_dim = 0 concat_dim = 1 : tensor<4x8x16xf32>
  %two = moe.all_to_all %b ranks = 2 split_dim = 0 concat_dim = 1 : tensor<4x8x16xf32>
  return %same, %two : tensor<4x8x16xf32>, tensor<2x16x16xf32>
}
