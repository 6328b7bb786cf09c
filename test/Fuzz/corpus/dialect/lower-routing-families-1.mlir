func.func @choice_scores(%s: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %c = moe.choice_scores %s bias(%b) num_groups = 4 keep = 2 group_score top2_sum : tensor<4x8xf32>, tensor<8xf32>
  return %c : tensor<4x8xf32>
}
