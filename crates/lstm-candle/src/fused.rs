//! The recurrence of one LSTM layer over a whole sequence as a single Candle
//! custom op on the CPU, forward and backward. Written out per time step in
//! Candle operations, the recurrence is about 60 small tensor operations a step
//! whose fixed costs dominated training; here a step is one matrix product
//! (`gemm`, as Candle itself uses) and one pass over the gates, and the backward
//! pass is the same in reverse plus one matrix product for the whole sequence's
//! weight gradient.
//!
//! Inputs: the input projections with both biases, time-major `(time * batch, 4 *
//! hidden)` in PyTorch's gate order (input, forget, cell, output), W_hh^T
//! `(hidden, 4 * hidden)`, and the initial state stacked as `(2, batch, hidden)`
//! (h then c). Or, for a layer above the first ([`Recurrence::projecting`]), the
//! layer's input `(time * batch, width)` and the weights stacked as `[W_ih^T;
//! W_hh^T; b_ih + b_hh]`, and the op makes the projections itself. Both avoid
//! graph nodes around the op: every node over a sequence costs a zero-filled
//! gradient buffer of its size in Candle's backward pass.
//! Output `(time + 1, batch, hidden)`: h at every step, then the final c.
//! With the `cuda` feature the same op runs on CUDA too (`fused_cuda.rs`).

use std::ops::{Add, AddAssign, Mul, MulAssign, Neg, Sub, SubAssign};
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Storage, Tensor, bail};

use crate::lstm::LayerState;

/// The two float types the op runs in: f32 for training, f64 for the
/// finite-difference tests.
pub(crate) trait Real:
    Copy
    + PartialOrd
    + Send
    + Sync
    + Default
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + MulAssign
    + SubAssign
    + candle_core::WithDType
{
    const ONE: Self;
    fn exp(self) -> Self;
    fn ln(self) -> Self;
    fn recip(self) -> Self;
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    fn storage(values: Vec<Self>) -> CpuStorage;
}

impl Real for f32 {
    const ONE: Self = 1.0;
    #[inline(always)]
    fn exp(self) -> Self {
        exp_f32(self)
    }
    fn ln(self) -> Self {
        f32::ln(self)
    }
    #[inline(always)]
    fn recip(self) -> Self {
        f32::recip(self)
    }
    fn slice(storage: &CpuStorage) -> Option<&[Self]> {
        match storage {
            CpuStorage::F32(values) => Some(values),
            _ => None,
        }
    }
    fn storage(values: Vec<Self>) -> CpuStorage {
        CpuStorage::F32(values)
    }
}

impl Real for f64 {
    const ONE: Self = 1.0;
    #[inline(always)]
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    #[inline(always)]
    fn recip(self) -> Self {
        f64::recip(self)
    }
    fn slice(storage: &CpuStorage) -> Option<&[Self]> {
        match storage {
            CpuStorage::F64(values) => Some(values),
            _ => None,
        }
    }
    fn storage(values: Vec<Self>) -> CpuStorage {
        CpuStorage::F64(values)
    }
}

#[inline(always)]
fn sigmoid<R: Real>(x: R) -> R {
    (R::ONE + (-x).exp()).recip()
}

/// tanh through exp, which is several times faster than libm's tanh and as
/// accurate here (see `lstm::fast_tanh`).
#[inline(always)]
fn tanh<R: Real>(x: R) -> R {
    let two = R::ONE + R::ONE;
    two * sigmoid(two * x) - R::ONE
}

/// e^x in f32 without a libm call, so that the gate loops vectorize: Cephes'
/// `expf` (range reduction by ln 2 in two parts, a degree-5 polynomial, and the
/// power of two put into the exponent bits), within 2 ulp of libm over the range.
/// Inputs are clamped to [-87.3, 88], where the result stays a normal float;
/// beyond it a sigmoid is already 0 or 1 to f32 precision. NaN stays NaN.
#[inline(always)]
fn exp_f32(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_54, 88.0);
    let n = (x * std::f32::consts::LOG2_E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4_f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // 2^n without a float-to-int conversion (which does not vectorize): adding
    // 2^23 + 127 puts n + 127 in the low mantissa bits, and the shift moves it
    // into the exponent. A NaN gives 0 here and stays NaN through y.
    let biased = (n + (8_388_608.0 + 127.0)).to_bits();
    y * f32::from_bits(biased << 23)
}

/// `dst = (accumulate ? dst : 0) + lhs @ rhs` for row-major operands given by
/// their strides (`rs` between rows, `cs` between columns).
#[allow(clippy::too_many_arguments)]
pub(crate) fn matmul<R: Real>(
    (m, n, k): (usize, usize, usize),
    dst: &mut [R],
    accumulate: bool,
    lhs: &[R],
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: &[R],
    (rhs_rs, rhs_cs): (usize, usize),
) {
    assert!(dst.len() >= m * n);
    assert!(m == 0 || k == 0 || lhs.len() > (m - 1) * lhs_rs + (k - 1) * lhs_cs);
    assert!(n == 0 || k == 0 || rhs.len() > (k - 1) * rhs_rs + (n - 1) * rhs_cs);
    // SAFETY: the asserts keep every index gemm reads or writes inside the slices.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs as isize,
            lhs_rs as isize,
            rhs.as_ptr(),
            rhs_cs as isize,
            rhs_rs as isize,
            R::ONE,
            R::ONE,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// While it lives, the thread's float operations read denormal numbers as zero
/// and write zero for them (x86's DAZ and FTZ bits); the caller's setting
/// returns when it drops. Saturated gates make products far below f32's
/// smallest normal number in an LSTM's training, and on x86 each operation that
/// meets one takes a microcode assist of about a hundred cycles. What is lost
/// is below 1.2e-38 (f32) or 2.2e-308 (f64).
pub(crate) struct DenormalsFlushed {
    #[cfg(target_arch = "x86_64")]
    saved: u32,
}

#[cfg(target_arch = "x86_64")]
impl DenormalsFlushed {
    const FLUSH_TO_ZERO: u32 = 1 << 15;
    const DENORMALS_ARE_ZERO: u32 = 1 << 6;

    pub(crate) fn new() -> Self {
        let mut saved = 0u32;
        // SAFETY: stmxcsr stores the 4-byte control register at the address,
        // which is a live u32; SSE is part of x86-64.
        unsafe {
            std::arch::asm!("stmxcsr [{}]", in(reg) &mut saved, options(nostack, preserves_flags));
        }
        Self::load(saved | Self::FLUSH_TO_ZERO | Self::DENORMALS_ARE_ZERO);
        Self { saved }
    }

    fn load(control: u32) {
        // SAFETY: ldmxcsr reads 4 bytes from a live u32; the value differs from
        // the current one only in the FTZ and DAZ bits, which raise no fault.
        unsafe {
            std::arch::asm!("ldmxcsr [{}]", in(reg) &control, options(nostack, readonly, preserves_flags));
        }
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for DenormalsFlushed {
    fn drop(&mut self) {
        Self::load(self.saved);
    }
}

#[cfg(not(target_arch = "x86_64"))]
impl DenormalsFlushed {
    pub(crate) fn new() -> Self {
        Self {}
    }
}

/// What the forward pass keeps for the backward pass.
struct Saved<R> {
    /// Activated gates (i, f, g, o) of every step, `(time, batch, 4 * hidden)`.
    gates: Vec<R>,
    /// c of every step, `(time, batch, hidden)`.
    cells: Vec<R>,
}

/// The op; one per call, holding what its forward pass saved.
pub(crate) struct Recurrence {
    pub hidden: usize,
    /// The width of the layer's input when the op projects it itself; then the
    /// weights are `[W_ih^T; W_hh^T; b_ih + b_hh]` stacked, `(width + hidden + 1,
    /// 4 * hidden)`. None when the input is already projected and the weights
    /// are W_hh^T alone.
    pub(crate) input_width: Option<usize>,
    saved_f32: Mutex<Option<Saved<f32>>>,
    saved_f64: Mutex<Option<Saved<f64>>>,
    /// What the forward pass on CUDA keeps, on the GPU.
    #[cfg(feature = "cuda")]
    pub(crate) kept_on_gpu: Mutex<Option<crate::fused_cuda::KeptOnGpu>>,
}

impl Recurrence {
    /// For projections computed outside (the first layer's table lookup).
    pub fn new(hidden: usize) -> Self {
        Self {
            hidden,
            input_width: None,
            saved_f32: Mutex::new(None),
            saved_f64: Mutex::new(None),
            #[cfg(feature = "cuda")]
            kept_on_gpu: Mutex::new(None),
        }
    }

    /// For a layer whose input `(time * batch, width)` the op projects itself:
    /// outside, the product and the bias would be two more graph nodes over
    /// `(time * batch, 4 * hidden)`, each with a zero-filled gradient buffer.
    pub fn projecting(hidden: usize, width: usize) -> Self {
        Self {
            input_width: Some(width),
            ..Self::new(hidden)
        }
    }

    /// The projections with both biases, and W_hh^T, from the op's inputs.
    fn projections<'a, R: Real>(
        &self,
        inputs: &'a [R],
        weights: &'a [R],
    ) -> (std::borrow::Cow<'a, [R]>, &'a [R]) {
        let four = 4 * self.hidden;
        let Some(width) = self.input_width else {
            return (std::borrow::Cow::Borrowed(inputs), weights);
        };
        let (input_t, rest) = weights.split_at(width * four);
        let (w_t, bias) = rest.split_at(self.hidden * four);
        let rows = inputs.len() / width;
        let mut projected = vec![R::default(); rows * four];
        matmul(
            (rows, four, width),
            &mut projected,
            false,
            inputs,
            (width, 1),
            input_t,
            (four, 1),
        );
        for row in projected.chunks_exact_mut(four) {
            for (value, &b) in row.iter_mut().zip(bias) {
                *value += b;
            }
        }
        (std::borrow::Cow::Owned(projected), w_t)
    }

    /// The gradients of the op's inputs and weights from those of the
    /// projections and of W_hh^T.
    fn input_gradients<R: Real>(
        &self,
        inputs: &[R],
        weights: &[R],
        d_projected: Vec<R>,
        d_w: Vec<R>,
    ) -> (Vec<R>, Vec<R>) {
        let four = 4 * self.hidden;
        let Some(width) = self.input_width else {
            return (d_projected, d_w);
        };
        let rows = inputs.len() / width;
        let input_t = &weights[..width * four];
        // d inputs = d projections @ W_ih, with W_ih^T read transposed (one
        // product for the whole sequence, so gemm's packing is paid once).
        let mut d_inputs = vec![R::default(); rows * width];
        matmul(
            (rows, width, four),
            &mut d_inputs,
            false,
            &d_projected,
            (four, 1),
            input_t,
            (1, four),
        );
        let mut d_weights = vec![R::default(); (width + self.hidden + 1) * four];
        let (d_input_t, rest) = d_weights.split_at_mut(width * four);
        let (d_w_t, d_bias) = rest.split_at_mut(self.hidden * four);
        matmul(
            (width, four, rows),
            d_input_t,
            false,
            inputs,
            (1, width),
            &d_projected,
            (four, 1),
        );
        d_w_t.copy_from_slice(&d_w);
        for row in d_projected.chunks_exact(four) {
            for (total, &d) in d_bias.iter_mut().zip(row) {
                *total += d;
            }
        }
        (d_inputs, d_weights)
    }
}

/// Dimensions (time, batch, hidden) of a call.
pub(crate) type Dims = (usize, usize, usize);

/// The four gates' quarters of a row laid out as (i, f, g, o), each `hidden` long.
#[inline(always)]
fn quarters<R>(row: &[R], hidden: usize) -> [&[R]; 4] {
    let row = &row[..4 * hidden];
    let (i, rest) = row.split_at(hidden);
    let (f, rest) = rest.split_at(hidden);
    let (g, o) = rest.split_at(hidden);
    [i, f, g, o]
}

#[inline(always)]
fn quarters_mut<R>(row: &mut [R], hidden: usize) -> [&mut [R]; 4] {
    let row = &mut row[..4 * hidden];
    let (i, rest) = row.split_at_mut(hidden);
    let (f, rest) = rest.split_at_mut(hidden);
    let (g, o) = rest.split_at_mut(hidden);
    [i, f, g, o]
}

/// One row's cell update: activates the gates `projected + recurrent` into
/// `gates` and writes the new c and h. Every slice is cut to `hidden` first, so
/// the loop has no bounds checks left and vectorizes.
#[inline(always)]
fn cell_forward<R: Real>(
    projected: &[R],
    recurrent: &[R],
    gates: &mut [R],
    c_prev: &[R],
    c_new: &mut [R],
    h_new: &mut [R],
) {
    let hidden = c_prev.len();
    let [pi, pf, pg, po] = quarters(projected, hidden);
    let [ri, rf, rg, ro] = quarters(recurrent, hidden);
    let [gi, gf, gg, go] = quarters_mut(gates, hidden);
    let (c_new, h_new) = (&mut c_new[..hidden], &mut h_new[..hidden]);
    for j in 0..hidden {
        let i = sigmoid(pi[j] + ri[j]);
        let f = sigmoid(pf[j] + rf[j]);
        let g = tanh(pg[j] + rg[j]);
        let o = sigmoid(po[j] + ro[j]);
        (gi[j], gf[j], gg[j], go[j]) = (i, f, g, o);
        let c = f * c_prev[j] + i * g;
        c_new[j] = c;
        h_new[j] = o * tanh(c);
    }
}

/// One row's step back through the cell: the gradients of the gates' inputs
/// from dh (from the output and the next step) and dc (from the next step),
/// which becomes dc for the step before.
#[inline(always)]
fn cell_backward<R: Real>(
    gates: &[R],
    cells: &[R],
    c_prev: &[R],
    grad_h: &[R],
    dh_next: &[R],
    dc_next: &mut [R],
    d_gates: &mut [R],
) {
    let hidden = cells.len();
    let [i, f, g, o] = quarters(gates, hidden);
    let [di, df, dg, d_o] = quarters_mut(d_gates, hidden);
    let (c_prev, grad_h, dh_next) = (&c_prev[..hidden], &grad_h[..hidden], &dh_next[..hidden]);
    let dc_next = &mut dc_next[..hidden];
    for j in 0..hidden {
        let (i, f, g, o) = (i[j], f[j], g[j], o[j]);
        let dh = grad_h[j] + dh_next[j];
        let tc = tanh(cells[j]);
        let dc = dc_next[j] + dh * o * (R::ONE - tc * tc);
        di[j] = dc * g * i * (R::ONE - i);
        df[j] = dc * c_prev[j] * f * (R::ONE - f);
        dg[j] = dc * i * (R::ONE - g * g);
        d_o[j] = dh * tc * o * (R::ONE - o);
        dc_next[j] = dc * f;
    }
}

/// Defines `$name`, which runs `$portable` compiled for AVX-512 or for AVX2
/// where the CPU has them, chosen at run time, else as built: the gate loops
/// vectorize far wider than the baseline's SSE2. `$portable` must be
/// `#[inline(always)]` so that each copy is compiled for its features.
macro_rules! compiled_per_cpu {
    ($(#[$doc:meta])* fn $name:ident => $portable:ident ($($arg:ident: $ty:ty),*) -> $ret:ty) => {
        $(#[$doc])*
        fn $name<R: Real>($($arg: $ty),*) -> $ret {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                fn avx512<R: Real>($($arg: $ty),*) -> $ret {
                    $portable($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                fn avx2<R: Real>($($arg: $ty),*) -> $ret {
                    $portable($($arg),*)
                }
                if is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features the function is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    // SAFETY: as above.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $portable($($arg),*)
        }
    };
}
pub(crate) use compiled_per_cpu;

compiled_per_cpu! {
    /// The forward pass: every step's h and the final c, and what the backward
    /// pass needs.
    fn forward => forward_portable(projected: &[R], w_t: &[R], state: &[R], dims: Dims) -> (Vec<R>, Saved<R>)
}

#[inline(always)]
fn forward_portable<R: Real>(
    projected: &[R],
    w_t: &[R],
    state: &[R],
    (time, batch, hidden): Dims,
) -> (Vec<R>, Saved<R>) {
    let four = 4 * hidden;
    let step = batch * hidden;
    let mut out = vec![R::default(); (time + 1) * step];
    let mut gates = vec![R::default(); time * batch * four];
    let mut cells = vec![R::default(); time * step];
    let mut recurrent = vec![R::default(); batch * four];
    for t in 0..time {
        let (earlier_h, later_h) = out.split_at_mut(t * step);
        let (earlier_c, later_c) = cells.split_at_mut(t * step);
        let (h_prev, c_prev): (&[R], &[R]) = if t == 0 {
            (&state[..step], &state[step..2 * step])
        } else {
            (&earlier_h[(t - 1) * step..], &earlier_c[(t - 1) * step..])
        };
        // The product goes to its own buffer and is added after, as Candle's
        // `x + h.matmul(w)` does: accumulating inside gemm rounds differently
        // for different batch sizes, and a batch split across threads must give
        // the same numbers as the whole batch.
        matmul(
            (batch, four, hidden),
            &mut recurrent,
            false,
            h_prev,
            (hidden, 1),
            w_t,
            (four, 1),
        );
        let rows = t * batch * four..(t + 1) * batch * four;
        let (projected, gates) = (&projected[rows.clone()], &mut gates[rows]);
        for r in 0..batch {
            let (wide, narrow) = (r * four..(r + 1) * four, r * hidden..(r + 1) * hidden);
            cell_forward(
                &projected[wide.clone()],
                &recurrent[wide.clone()],
                &mut gates[wide],
                &c_prev[narrow.clone()],
                &mut later_c[narrow.clone()],
                &mut later_h[narrow],
            );
        }
    }
    if time > 0 {
        out[time * step..].copy_from_slice(&cells[(time - 1) * step..]);
    } else {
        out.copy_from_slice(&state[step..2 * step]);
    }
    (out, Saved { gates, cells })
}

compiled_per_cpu! {
    /// One step's cell update for every row, for generation: the gates'
    /// products `(rows, 4 * hidden)`, their bias `(4 * hidden)` and c `(rows,
    /// hidden)` give the new h and c, through the recurrence's own loop.
    fn cell_step => cell_step_portable(products: &[R], bias: &[R], c_prev: &[R], hidden: usize) -> (Vec<R>, Vec<R>)
}

#[inline(always)]
fn cell_step_portable<R: Real>(
    products: &[R],
    bias: &[R],
    c_prev: &[R],
    hidden: usize,
) -> (Vec<R>, Vec<R>) {
    let four = 4 * hidden;
    let mut gates = vec![R::default(); four];
    let (mut h, mut c) = (
        vec![R::default(); c_prev.len()],
        vec![R::default(); c_prev.len()],
    );
    for r in 0..c_prev.len() / hidden {
        let (wide, narrow) = (r * four..(r + 1) * four, r * hidden..(r + 1) * hidden);
        // The bias takes the place of the recurrent product the loop adds,
        // which `products` already holds.
        cell_forward(
            &products[wide],
            bias,
            &mut gates,
            &c_prev[narrow.clone()],
            &mut c[narrow.clone()],
            &mut h[narrow],
        );
    }
    (h, c)
}

/// The stepper's cell update on the CPU in f32: [`cell_step`] on the gates'
/// products `(rows, 4 * hidden)` (input and recurrent summed), their bias
/// `(4 * hidden)` and c `(rows, hidden)`. Candle's sigmoid calls libm's `expf`
/// one value at a time, a fifth of a generation step at hidden 512; this loop
/// is vectorized, with the exp the fused recurrence trains with, and adds the
/// bias as it goes rather than in a tensor of its own.
pub(crate) fn step_cell(products: &Tensor, bias: &Tensor, c: &Tensor) -> Result<LayerState> {
    let (rows, hidden) = c.dims2()?;
    if products.dims2()? != (rows, 4 * hidden) || bias.dims1()? != 4 * hidden {
        bail!(
            "a cell step needs products (rows, 4 * {hidden}) and a bias (4 * {hidden}), not {:?} and {:?}",
            products.dims(),
            bias.dims()
        )
    }
    let (products, bias, c) = (products.contiguous()?, bias.contiguous()?, c.contiguous()?);
    let guards = [&products, &bias, &c].map(|t| t.storage_and_layout());
    let (h, c) = cell_step(
        cpu_values::<f32, _>(&guards[0], "products")?,
        cpu_values::<f32, _>(&guards[1], "bias")?,
        cpu_values::<f32, _>(&guards[2], "c")?,
        hidden,
    );
    let device = products.device();
    Ok(LayerState {
        h: Tensor::from_vec(h, (rows, hidden), device)?,
        c: Tensor::from_vec(c, (rows, hidden), device)?,
    })
}

/// The three gradients: of the projections, of W_hh^T and of the initial state.
type Gradients<R> = (Vec<R>, Vec<R>, Vec<R>);

compiled_per_cpu! {
    /// Gradients of the projections, of W_hh^T and of the initial state.
    fn backward => backward_portable(
        saved: &Saved<R>,
        out: &[R],
        w_t: &[R],
        state: &[R],
        grad_out: &[R],
        dims: Dims
    ) -> Gradients<R>
}

#[inline(always)]
fn backward_portable<R: Real>(
    saved: &Saved<R>,
    out: &[R],
    w_t: &[R],
    state: &[R],
    grad_out: &[R],
    (time, batch, hidden): Dims,
) -> Gradients<R> {
    let four = 4 * hidden;
    let step = batch * hidden;
    let mut d_projected = vec![R::default(); time * batch * four];
    let mut dh_next = vec![R::default(); step];
    // The final c is an output too.
    let mut dc_next = grad_out[time * step..(time + 1) * step].to_vec();
    // W_hh row-major, made once: gemm repacks a transposed right operand on
    // every call, which here is every step.
    let mut w = vec![R::default(); four * hidden];
    for (k, row) in w_t.chunks_exact(four).enumerate() {
        for (gate, &value) in row.iter().enumerate() {
            w[gate * hidden + k] = value;
        }
    }
    for t in (0..time).rev() {
        let rows = t * batch * four..(t + 1) * batch * four;
        let (gates, da) = (&saved.gates[rows.clone()], &mut d_projected[rows]);
        let cells = &saved.cells[t * step..(t + 1) * step];
        let c_prev = if t == 0 {
            &state[step..2 * step]
        } else {
            &saved.cells[(t - 1) * step..t * step]
        };
        let grad_h = &grad_out[t * step..(t + 1) * step];
        for r in 0..batch {
            let (wide, narrow) = (r * four..(r + 1) * four, r * hidden..(r + 1) * hidden);
            cell_backward(
                &gates[wide.clone()],
                &cells[narrow.clone()],
                &c_prev[narrow.clone()],
                &grad_h[narrow.clone()],
                &dh_next[narrow.clone()],
                &mut dc_next[narrow],
                &mut da[wide],
            );
        }
        // dh_{t-1} = da @ W_hh: (batch, 4h) times (4h, h).
        matmul(
            (batch, hidden, four),
            &mut dh_next,
            false,
            da,
            (four, 1),
            &w,
            (hidden, 1),
        );
    }
    // dW_hh^T = sum over steps of h_{t-1}^T da_t, as two products: the first
    // step's h_{-1} is the initial state, the others' are h_0 .. h_{time-2} of
    // the output, read in place.
    let mut d_w = vec![R::default(); hidden * four];
    if time > 0 {
        matmul(
            (hidden, four, batch),
            &mut d_w,
            false,
            &state[..step],
            (1, hidden),
            &d_projected[..batch * four],
            (four, 1),
        );
    }
    if time > 1 {
        let mut rest = vec![R::default(); hidden * four];
        matmul(
            (hidden, four, (time - 1) * batch),
            &mut rest,
            false,
            &out[..(time - 1) * step],
            (1, hidden),
            &d_projected[batch * four..],
            (four, 1),
        );
        for (total, part) in d_w.iter_mut().zip(rest) {
            *total += part;
        }
    }
    let mut d_state = dh_next;
    d_state.extend(dc_next);
    (d_projected, d_w, d_state)
}

pub(crate) fn contiguous<'a, R: Real>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [R]> {
    let Some(values) = R::slice(storage) else {
        bail!("fused op: {what} has an unsupported dtype");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => bail!("fused op: {what} must be contiguous"),
    }
}

/// A CPU tensor's values, read in place under its storage's read guard (from
/// `Tensor::storage_and_layout`): copying them out cost more than the gate
/// arithmetic.
pub(crate) fn cpu_values<'a, R: Real, Guard: std::ops::Deref<Target = Storage>>(
    (storage, layout): &'a (Guard, &'a Layout),
    what: &str,
) -> Result<&'a [R]> {
    match &**storage {
        Storage::Cpu(storage) => contiguous::<R>(storage, layout, what),
        _ => bail!("fused op: {what} is not on the CPU"),
    }
}

impl Recurrence {
    pub(crate) fn dims(&self, inputs: &Layout, weights: &Layout, state: &Layout) -> Result<Dims> {
        let (rows, width) = inputs.shape().dims2()?;
        let (weight_rows, weight_width) = weights.shape().dims2()?;
        let (two, batch, hidden) = state.shape().dims3()?;
        let (expected_width, expected_weight_rows) = match self.input_width {
            Some(input_width) => (input_width, input_width + self.hidden + 1),
            None => (4 * self.hidden, self.hidden),
        };
        if width != expected_width
            || (weight_rows, weight_width) != (expected_weight_rows, 4 * self.hidden)
            || two != 2
            || hidden != self.hidden
            || batch == 0
            || rows % batch != 0
        {
            bail!(
                "fused LSTM: shapes {:?}, {:?} and {:?} do not fit hidden size {}",
                inputs.shape(),
                weights.shape(),
                state.shape(),
                self.hidden
            );
        }
        Ok((rows / batch, batch, hidden))
    }

    fn run<R: Real>(
        &self,
        saved: &Mutex<Option<Saved<R>>>,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        (s3, l3): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let dims = self.dims(l1, l2, l3)?;
        let inputs = contiguous::<R>(s1, l1, "the inputs")?;
        let weights = contiguous::<R>(s2, l2, "the weights")?;
        let state = contiguous::<R>(s3, l3, "the state")?;
        let (projected, w_t) = self.projections(inputs, weights);
        let (out, kept) = forward(&projected, w_t, state, dims);
        *saved.lock().expect("not poisoned") = Some(kept);
        let (time, batch, hidden) = dims;
        Ok((R::storage(out), Shape::from((time + 1, batch, hidden))))
    }

    fn gradients<R: Real>(
        &self,
        saved: &Mutex<Option<Saved<R>>>,
        args: [&Tensor; 5],
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let [inputs, weights, state, out, grad_out] = args.map(Tensor::contiguous);
        let (inputs, weights, state, out, grad_out) = (inputs?, weights?, state?, out?, grad_out?);
        let dims = self.dims(inputs.layout(), weights.layout(), state.layout())?;
        let guards = [&inputs, &weights, &state, &out, &grad_out].map(|t| t.storage_and_layout());
        let inputs_v = cpu_values::<R, _>(&guards[0], "the inputs")?;
        let weights_v = cpu_values::<R, _>(&guards[1], "the weights")?;
        let state_v = cpu_values::<R, _>(&guards[2], "the state")?;
        let out_v = cpu_values::<R, _>(&guards[3], "the output")?;
        let grad_out_v = cpu_values::<R, _>(&guards[4], "the output's gradient")?;
        let w_t_v = match self.input_width {
            Some(width) => &weights_v[width * 4 * self.hidden..][..self.hidden * 4 * self.hidden],
            None => weights_v,
        };
        let kept = saved.lock().expect("not poisoned").take();
        let kept = match kept {
            Some(kept) => kept,
            // Only if the backward pass runs twice: do the forward pass again.
            None => {
                forward(
                    &self.projections(inputs_v, weights_v).0,
                    w_t_v,
                    state_v,
                    dims,
                )
                .1
            }
        };
        let (d_projected, d_w, d_state) = backward(&kept, out_v, w_t_v, state_v, grad_out_v, dims);
        let (d_inputs, d_weights) = self.input_gradients(inputs_v, weights_v, d_projected, d_w);
        drop(guards);
        let device = inputs.device();
        let d_inputs = Tensor::from_vec(d_inputs, inputs.shape(), device)?;
        let d_weights = Tensor::from_vec(d_weights, weights.shape(), device)?;
        let d_state = Tensor::from_vec(d_state, state.shape(), device)?;
        Ok((Some(d_inputs), Some(d_weights), Some(d_state)))
    }
}

impl CustomOp3 for Recurrence {
    fn name(&self) -> &'static str {
        "lstm-recurrence"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let _flushed = DenormalsFlushed::new();
        match s1 {
            CpuStorage::F32(_) => self.run(&self.saved_f32, (s1, l1), (s2, l2), (s3, l3)),
            CpuStorage::F64(_) => self.run(&self.saved_f64, (s1, l1), (s2, l2), (s3, l3)),
            _ => bail!("fused LSTM: only f32 and f64"),
        }
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        s1: &candle_core::CudaStorage,
        l1: &Layout,
        s2: &candle_core::CudaStorage,
        l2: &Layout,
        s3: &candle_core::CudaStorage,
        l3: &Layout,
    ) -> Result<(candle_core::CudaStorage, Shape)> {
        crate::fused_cuda::forward(self, (s1, l1), (s2, l2), (s3, l3))
    }

    fn bwd(
        &self,
        inputs: &Tensor,
        weights: &Tensor,
        state: &Tensor,
        out: &Tensor,
        grad_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let args = [inputs, weights, state, out, grad_out];
        #[cfg(feature = "cuda")]
        if inputs.device().is_cuda() {
            let [d_inputs, d_weights, d_state] = crate::fused_cuda::gradients(self, args)?;
            return Ok((Some(d_inputs), Some(d_weights), Some(d_state)));
        }
        let _flushed = DenormalsFlushed::new();
        match inputs.dtype() {
            candle_core::DType::F32 => self.gradients(&self.saved_f32, args),
            candle_core::DType::F64 => self.gradients(&self.saved_f64, args),
            other => bail!("fused LSTM: no backward for {other:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::exp_f32;
    use candle_core::{Device, Tensor};

    /// The stepper's cell step on the CPU gives what the step-by-step graph's
    /// cell update gives, within a few f32 ulps, for a hidden size that is not
    /// a multiple of the vector width; and a row gives the same alone.
    #[test]
    fn a_cell_step_is_the_graphs_cell_update() {
        let (rows, hidden) = (5, 21);
        let uniform = |width: usize, scale: f64| {
            Tensor::rand(0f32, 1f32, (rows, width), &Device::Cpu)
                .and_then(|t| t.affine(2.0 * scale, -scale))
                .unwrap()
        };
        let (products, c) = (uniform(4 * hidden, 5.0), uniform(hidden, 2.0));
        let bias = Tensor::rand(-1f32, 1f32, 4 * hidden, &Device::Cpu).unwrap();
        let crate::lstm::LayerState { h, c: c_new } =
            super::step_cell(&products, &bias, &c).unwrap();
        let pre = products.broadcast_add(&bias).unwrap();
        let gate = |k: usize| pre.narrow(1, k * hidden, hidden).unwrap();
        let graph = crate::lstm::cell_update([gate(0), gate(1), gate(2), gate(3)], &c).unwrap();
        for (found, expected) in [(&h, &graph.h), (&c_new, &graph.c)] {
            let gap = (found - expected)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap();
            let gap = gap.to_scalar::<f32>().unwrap();
            assert!(gap < 2e-6, "{gap} from the graph's cell update");
        }
        let alone = super::step_cell(
            &products.narrow(0, 3, 1).unwrap(),
            &bias,
            &c.narrow(0, 3, 1).unwrap(),
        )
        .unwrap();
        assert_eq!(
            alone.h.to_vec2::<f32>().unwrap()[0],
            h.to_vec2::<f32>().unwrap()[3]
        );
    }

    /// 1e-30 x 1e-10 is a denormal f32: zero while the guard lives, itself
    /// before and after.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn denormals_are_flushed_while_the_guard_lives() {
        let product = || std::hint::black_box(1e-30_f32) * std::hint::black_box(1e-10_f32);
        assert!(product() > 0.0 && product() < f32::MIN_POSITIVE);
        {
            let _flushed = super::DenormalsFlushed::new();
            assert_eq!(product(), 0.0);
            assert_eq!(std::hint::black_box(1e-40_f32) + 0.0, 0.0);
        }
        assert!(product() > 0.0);
    }

    /// Within 2 ulp of the correctly rounded e^x over the range it does not clamp.
    #[test]
    fn exp_f32_matches_libm_within_two_ulp() {
        let mut worst = 0f64;
        for i in 0..=2_000_000 {
            let x = -87.0 + 175.0 * f64::from(i) / 2_000_000.0;
            let exact = (x as f32 as f64).exp();
            let ulp = f64::from(f32::EPSILON) * exact;
            worst = worst.max((f64::from(exp_f32(x as f32)) - exact).abs() / ulp);
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(exp_f32(0.0), 1.0);
    }

    #[test]
    fn exp_f32_clamps_far_inputs_and_keeps_nan() {
        assert!(exp_f32(f32::NAN).is_nan());
        assert_eq!(exp_f32(200.0), exp_f32(88.0));
        assert!(exp_f32(f32::INFINITY).is_finite());
        assert!(exp_f32(-200.0) > 0.0 && exp_f32(-200.0) < 1.2e-38);
        assert!(exp_f32(f32::NEG_INFINITY) < 1.2e-38);
    }
}
