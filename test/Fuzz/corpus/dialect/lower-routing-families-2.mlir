func.func @choice_scores_all_groups(%s: tensor<4x8xf32>, %b: tensor<8xf32>) -> tensor<4x8xf32> {
  %c = moe.choice_scores %s bias(%b) num_groups = 4 keep = 4 group_score max : tensor<4x8xf32>, tensor<8xf32>
  return %c : tensor<4x8xf32>
}
