func.func @choice_keep(%s: tensor<16x8xf32>) {
  %c = moe.choice_scores %s num_groups = 4 keep = 0 group_score max : tensor<16x8xf32>
  return
}
