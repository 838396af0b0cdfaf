use std::time::Instant;
use burn::prelude::*;
use burn::tensor::Distribution;
use weatherlens_models::fused;

fn time<F: FnMut() -> f32>(name: &str, mut f: F) {
    f();
    let start = Instant::now();
    let n = 20;
    let mut acc = 0.0;
    for _ in 0..n { acc += f(); }
    println!("{name:40} {:8.3} ms  ({acc:.1})", start.elapsed().as_secs_f64() * 1e3 / n as f64);
}

fn main() {
    let device = Device::flex();
    let e = 20460; let d = 128; let n = 2562;
    let nd = Distribution::Normal(0.0, 1.0);
    let x = Tensor::<3>::random([1, e, d], nd, &device);
    let w = Tensor::<3>::random([1, d, d], nd, &device);
    let xt = Tensor::<3>::random([1, d, e], nd, &device);
    let b = Tensor::<1>::random([d], nd, &device);
    let nodes = Tensor::<3>::random([1, n, d], nd, &device);
    let idx: Vec<u32> = (0..e as u32).map(|k| (k * 7919) % n as u32).collect();
    let seg = fused::Segments::new(&idx, n, &device);
    let sorted: Vec<u32> = (0..e as u32).map(|k| k * n as u32 / e as u32).collect();
    let seg_sorted = fused::Segments::new(&sorted, n, &device);
    let s = |t: Tensor<3>| t.slice([0..1, 0..1, 0..1]).into_scalar::<f32>();
    time("matmul [E,D]x[D,D]", || s(x.clone().matmul(w.clone())));
    time("matmul [D,E]x[E,D]", || s(xt.clone().matmul(x.clone())));
    time("matmul x^T (swap) x", || s(x.clone().swap_dims(1, 2).matmul(x.clone())));
    time("matmul [E,D]x[D,D]^T", || s(x.clone().matmul(w.clone().swap_dims(1,2))));
    time("add", || s(x.clone() + x.clone()));
    time("bias_silu", || s(fused::bias_silu(x.clone(), b.clone())));
    time("layer_norm", || s(fused::layer_norm(x.clone(), b.clone(), b.clone(), 1e-5)));
    time("gathered_bias_silu", || s(fused::gathered_bias_silu(x.clone(), (nodes.clone(), &seg), (nodes.clone(), &seg_sorted), b.clone())));
    time("segment_sum (scattered)", || { let r = fused::segment_sum(x.clone(), x.clone(), &seg); r.slice([0..1,0..1,0..1]).into_scalar::<f32>() });
    time("segment_sum (sorted)", || { let r = fused::segment_sum(x.clone(), x.clone(), &seg_sorted); r.slice([0..1,0..1,0..1]).into_scalar::<f32>() });
    time("reference silu", || s(fused::reference::bias_silu(x.clone(), b.clone())));
}
