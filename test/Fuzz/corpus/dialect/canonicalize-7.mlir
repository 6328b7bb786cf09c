func.func @balance_one_expert(%p1: tensor<8x1xf32>, %e1: tensor<8x1xi32>,
    %p2: tensor<8x2xf32>, %e2: tensor<8x1xi32>) -> (tensor<f32>, tensor<f32>) {
  %one = moe.load_balance_loss %p1, %e1 group_size = 8 : tensor<8x1xf32>, tensor<8x1xi32>
  %two = moe.load_balance_loss %p2, %e2 group_size = 8 : tensor<8x2xf32>, tensor<8x1xi32>
  return %one, %two : tensor<f32>, tensor<f32>
}
