func.func @choice_bias(%s: tensor<16x8xf32>, %b: tensor<7xf32>) {
  %c = moe.choice_scores %s bias(%b) num_groups = 1 keep = 1 group_score max : tensor<16x8xf32>, tensor<7xf32>
  return
}
