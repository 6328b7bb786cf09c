func.func @choice_top2(%s: tensor<16x8xf32>) {
  %c = moe.choice_scores %s num_groups = 8 keep = 2 group_score top2_sum : tensor<16x8xf32>
  return
}
