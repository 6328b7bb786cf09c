// Invalid statistics ops (moe.load_balance_loss, moe.router_z_loss, moe.count_dropped): every verifier rule, static shapes and ODS constraints.
// RUN: moe-opt %s -split-input-file -verify-diagnostics

func.func @lb_dynamic_probs(%p: tensor<?x4xf32>, %e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op operand #0 must have a static shape, got 'tensor<?x4xf32>'}}
  %lb = moe.load_balance_loss %p, %e group_size = 8 : tensor<?x4xf32>, tensor<16x2xi32>
  return
}

// -----

func.func @lb_dynamic_experts(%p: tensor<16x4xf32>, %e: tensor<16x?xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op operand #1 must have a static shape, got 'tensor<16x?xi32>'}}
  %lb = moe.load_balance_loss %p, %e group_size = 8 : tensor<16x4xf32>, tensor<16x?xi32>
  return
}

// -----

func.func @lb_experts_rows(%p: tensor<16x4xf32>, %e: tensor<8x2xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op 'experts' must have one row per token of 'probs' (16), got 8}}
  %lb = moe.load_balance_loss %p, %e group_size = 8 : tensor<16x4xf32>, tensor<8x2xi32>
  return
}

// -----

func.func @lb_no_choices(%p: tensor<16x4xf32>, %e: tensor<16x0xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op 'experts' must hold at least one choice per token}}
  %lb = moe.load_balance_loss %p, %e group_size = 8 : tensor<16x4xf32>, tensor<16x0xi32>
  return
}

// -----

func.func @lb_group_size_zero(%p: tensor<16x4xf32>, %e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op 'group_size' must be positive, got 0}}
  %lb = moe.load_balance_loss %p, %e group_size = 0 : tensor<16x4xf32>, tensor<16x2xi32>
  return
}

// -----

func.func @lb_group_size_not_dividing(%p: tensor<16x4xf32>, %e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op 'group_size' (32) must divide the number of tokens (16)}}
  %lb = moe.load_balance_loss %p, %e group_size = 32 : tensor<16x4xf32>, tensor<16x2xi32>
  return
}

// -----

func.func @lb_bf16_probs(%p: tensor<16x4xbf16>, %e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op operand #0 must be 2D tensor of 32-bit float values, but got 'tensor<16x4xbf16>'}}
  %lb = moe.load_balance_loss %p, %e group_size = 8 : tensor<16x4xbf16>, tensor<16x2xi32>
  return
}

// -----

func.func @lb_f64_result(%p: tensor<16x4xf32>, %e: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.load_balance_loss' op result #0 must be 0D tensor of 32-bit float values, but got 'tensor<f64>'}}
  %lb = "moe.load_balance_loss"(%p, %e) <{group_size = 8 : i64}> : (tensor<16x4xf32>, tensor<16x2xi32>) -> tensor<f64>
  return
}

// -----

func.func @z_dynamic(%lse: tensor<?xf32>) {
  // expected-error @+1 {{'moe.router_z_loss' op operand #0 must have a static shape, got 'tensor<?xf32>'}}
  %z = moe.router_z_loss %lse : tensor<?xf32>
  return
}

// -----

func.func @z_rank(%lse: tensor<16x4xf32>) {
  // expected-error @+1 {{'moe.router_z_loss' op operand #0 must be 1D tensor of 32-bit float values, but got 'tensor<16x4xf32>'}}
  %z = moe.router_z_loss %lse : tensor<16x4xf32>
  return
}

// -----

func.func @z_f16(%lse: tensor<16xf16>) {
  // expected-error @+1 {{'moe.router_z_loss' op operand #0 must be 1D tensor of 32-bit float values, but got 'tensor<16xf16>'}}
  %z = moe.router_z_loss %lse : tensor<16xf16>
  return
}

// -----

func.func @dropped_dynamic(%k: tensor<16x?xi1>) {
  // expected-error @+1 {{'moe.count_dropped' op operand #0 must have a static shape, got 'tensor<16x?xi1>'}}
  %d = moe.count_dropped %k : tensor<16x?xi1>
  return
}

// -----

func.func @dropped_i32(%k: tensor<16x2xi32>) {
  // expected-error @+1 {{'moe.count_dropped' op operand #0 must be 2D tensor of 1-bit signless integer values, but got 'tensor<16x2xi32>'}}
  %d = moe.count_dropped %k : tensor<16x2xi32>
  return
}

// -----

func.func @dropped_result_i32(%k: tensor<16x2xi1>) {
  // expected-error @+1 {{'moe.count_dropped' op result #0 must be 0D tensor of 64-bit signless integer values, but got 'tensor<i32>'}}
  %d = "moe.count_dropped"(%k) : (tensor<16x2xi1>) -> tensor<i32>
  return
}
