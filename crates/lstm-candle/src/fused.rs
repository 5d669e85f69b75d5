//! The recurrence of one LSTM layer over a whole sequence as a single Candle
//! custom op on the CPU, forward and backward. Written out per time step in
//! Candle operations, the recurrence is about 60 small tensor operations a step
//! whose fixed costs dominated training; here a step is one matrix product
//! (`gemm`, as Candle itself uses) and one pass over the gates, and the backward
//! pass is the same in reverse plus one matrix product for the whole sequence's
//! weight gradient.
//!
//! Inputs: the input projections with both biases `(time, batch, 4 * hidden)` in
//! PyTorch's gate order (input, forget, cell, output), W_hh^T `(hidden, 4 *
//! hidden)`, and the initial state stacked as `(2, batch, hidden)` (h then c).
//! Output `(time + 1, batch, hidden)`: h at every step, then the final c.

use std::ops::{Add, AddAssign, Mul, Neg, Sub};
use std::sync::Mutex;

use candle_core::{CpuStorage, CustomOp3, Layout, Result, Shape, Tensor, bail};

/// The two float types the op runs in: f32 for training, f64 for the
/// finite-difference tests.
trait Real:
    Copy
    + Send
    + Sync
    + Default
    + 'static
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Neg<Output = Self>
    + AddAssign
    + candle_core::WithDType
{
    const ONE: Self;
    fn exp(self) -> Self;
    fn recip(self) -> Self;
    fn slice(storage: &CpuStorage) -> Option<&[Self]>;
    fn storage(values: Vec<Self>) -> CpuStorage;
}

/// A tensor's values in row-major order.
fn values<R: Real>(tensor: &Tensor) -> Result<Vec<R>> {
    tensor.flatten_all()?.to_vec1()
}

impl Real for f32 {
    const ONE: Self = 1.0;
    fn exp(self) -> Self {
        f32::exp(self)
    }
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
    fn exp(self) -> Self {
        f64::exp(self)
    }
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

fn sigmoid<R: Real>(x: R) -> R {
    (R::ONE + (-x).exp()).recip()
}

/// tanh through exp, which is several times faster than libm's tanh and as
/// accurate here (see `lstm::fast_tanh`).
fn tanh<R: Real>(x: R) -> R {
    let two = R::ONE + R::ONE;
    two * sigmoid(two * x) - R::ONE
}

/// `dst = (accumulate ? dst : 0) + lhs @ rhs` for row-major operands given by
/// their strides (`rs` between rows, `cs` between columns).
#[allow(clippy::too_many_arguments)]
fn matmul<R: Real>(
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
    saved_f32: Mutex<Option<Saved<f32>>>,
    saved_f64: Mutex<Option<Saved<f64>>>,
}

impl Recurrence {
    pub fn new(hidden: usize) -> Self {
        Self {
            hidden,
            saved_f32: Mutex::new(None),
            saved_f64: Mutex::new(None),
        }
    }
}

/// Dimensions (time, batch, hidden) of a call.
type Dims = (usize, usize, usize);

fn forward<R: Real>(
    projected: &[R],
    w_t: &[R],
    state: &[R],
    (time, batch, hidden): Dims,
) -> (Vec<R>, Saved<R>) {
    let four = 4 * hidden;
    let step = batch * hidden;
    let mut out = vec![R::default(); (time + 1) * step];
    let mut gates = projected.to_vec();
    let mut cells = vec![R::default(); time * step];
    let mut recurrent = vec![R::default(); batch * four];
    for t in 0..time {
        let (h_prev, c_prev): (&[R], &[R]) = if t == 0 {
            (&state[..step], &state[step..2 * step])
        } else {
            (
                &out[(t - 1) * step..t * step],
                &cells[(t - 1) * step..t * step],
            )
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
        let a = &mut gates[t * batch * four..(t + 1) * batch * four];
        for (a, r) in a.iter_mut().zip(&recurrent) {
            *a += *r;
        }
        let mut h_new = vec![R::default(); step];
        let mut c_new = vec![R::default(); step];
        for r in 0..batch {
            let row = &mut a[r * four..(r + 1) * four];
            for j in 0..hidden {
                let i = sigmoid(row[j]);
                let f = sigmoid(row[hidden + j]);
                let g = tanh(row[2 * hidden + j]);
                let o = sigmoid(row[3 * hidden + j]);
                row[j] = i;
                row[hidden + j] = f;
                row[2 * hidden + j] = g;
                row[3 * hidden + j] = o;
                let c = f * c_prev[r * hidden + j] + i * g;
                c_new[r * hidden + j] = c;
                h_new[r * hidden + j] = o * tanh(c);
            }
        }
        out[t * step..(t + 1) * step].copy_from_slice(&h_new);
        cells[t * step..(t + 1) * step].copy_from_slice(&c_new);
    }
    if time > 0 {
        out[time * step..].copy_from_slice(&cells[(time - 1) * step..]);
    } else {
        out.copy_from_slice(&state[step..2 * step]);
    }
    (out, Saved { gates, cells })
}

/// Gradients of the projections, of W_hh^T and of the initial state.
fn backward<R: Real>(
    saved: &Saved<R>,
    out: &[R],
    w_t: &[R],
    state: &[R],
    grad_out: &[R],
    (time, batch, hidden): Dims,
) -> (Vec<R>, Vec<R>, Vec<R>) {
    let four = 4 * hidden;
    let step = batch * hidden;
    let mut d_projected = vec![R::default(); time * batch * four];
    let mut dh_next = vec![R::default(); step];
    // The final c is an output too.
    let mut dc_next = grad_out[time * step..(time + 1) * step].to_vec();
    for t in (0..time).rev() {
        let gates = &saved.gates[t * batch * four..(t + 1) * batch * four];
        let cells = &saved.cells[t * step..(t + 1) * step];
        let c_prev = if t == 0 {
            &state[step..2 * step]
        } else {
            &saved.cells[(t - 1) * step..t * step]
        };
        let da = &mut d_projected[t * batch * four..(t + 1) * batch * four];
        for r in 0..batch {
            for j in 0..hidden {
                let at = r * hidden + j;
                let (i, f, g, o) = (
                    gates[r * four + j],
                    gates[r * four + hidden + j],
                    gates[r * four + 2 * hidden + j],
                    gates[r * four + 3 * hidden + j],
                );
                let dh = grad_out[t * step + at] + dh_next[at];
                let tc = tanh(cells[at]);
                let d_o = dh * tc;
                let dc = dc_next[at] + dh * o * (R::ONE - tc * tc);
                let row = &mut da[r * four..(r + 1) * four];
                row[j] = dc * g * i * (R::ONE - i);
                row[hidden + j] = dc * c_prev[at] * f * (R::ONE - f);
                row[2 * hidden + j] = dc * i * (R::ONE - g * g);
                row[3 * hidden + j] = d_o * o * (R::ONE - o);
                dc_next[at] = dc * f;
            }
        }
        // dh_{t-1} = da @ W_hh^T^T, i.e. da (batch, 4h) times w_t read transposed.
        matmul(
            (batch, hidden, four),
            &mut dh_next,
            false,
            da,
            (four, 1),
            w_t,
            (1, four),
        );
    }
    // dW_hh^T = sum over steps of h_{t-1}^T da_t: one product over the sequence,
    // with h_{-1} from the initial state and h_0 .. h_{time-2} from the output.
    let mut previous = Vec::with_capacity(time * step);
    if time > 0 {
        previous.extend_from_slice(&state[..step]);
        previous.extend_from_slice(&out[..(time - 1) * step]);
    }
    let mut d_w = vec![R::default(); hidden * four];
    matmul(
        (hidden, four, time * batch),
        &mut d_w,
        false,
        &previous,
        (1, hidden),
        &d_projected,
        (four, 1),
    );
    let mut d_state = dh_next;
    d_state.extend(dc_next);
    (d_projected, d_w, d_state)
}

fn contiguous<'a, R: Real>(
    storage: &'a CpuStorage,
    layout: &Layout,
    what: &str,
) -> Result<&'a [R]> {
    let Some(values) = R::slice(storage) else {
        bail!("fused LSTM: {what} has an unsupported dtype");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&values[start..end]),
        None => bail!("fused LSTM: {what} must be contiguous"),
    }
}

impl Recurrence {
    fn dims(&self, projected: &Layout, state: &Layout) -> Result<Dims> {
        let (time, batch, width) = projected.shape().dims3()?;
        let (two, state_batch, hidden) = state.shape().dims3()?;
        if width != 4 * self.hidden || two != 2 || state_batch != batch || hidden != self.hidden {
            bail!(
                "fused LSTM: shapes {:?} and {:?} do not fit hidden size {}",
                projected.shape(),
                state.shape(),
                self.hidden
            );
        }
        Ok((time, batch, hidden))
    }

    fn run<R: Real>(
        &self,
        saved: &Mutex<Option<Saved<R>>>,
        (s1, l1): (&CpuStorage, &Layout),
        (s2, l2): (&CpuStorage, &Layout),
        (s3, l3): (&CpuStorage, &Layout),
    ) -> Result<(CpuStorage, Shape)> {
        let dims = self.dims(l1, l3)?;
        let projected = contiguous::<R>(s1, l1, "the projections")?;
        let w_t = contiguous::<R>(s2, l2, "W_hh^T")?;
        let state = contiguous::<R>(s3, l3, "the state")?;
        let (out, kept) = forward(projected, w_t, state, dims);
        *saved.lock().expect("not poisoned") = Some(kept);
        let (time, batch, hidden) = dims;
        Ok((R::storage(out), Shape::from((time + 1, batch, hidden))))
    }

    fn gradients<R: Real>(
        &self,
        saved: &Mutex<Option<Saved<R>>>,
        [projected, w_t, state, out, grad_out]: [&Tensor; 5],
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let dims = projected.dims3()?;
        let dims = (dims.0, dims.1, self.hidden);
        let kept = saved.lock().expect("not poisoned").take();
        let kept = match kept {
            Some(kept) => kept,
            // Only if the backward pass runs twice: do the forward pass again.
            None => {
                forward(
                    &values::<R>(projected)?,
                    &values::<R>(w_t)?,
                    &values::<R>(state)?,
                    dims,
                )
                .1
            }
        };
        let (d_projected, d_w, d_state) = backward(
            &kept,
            &values::<R>(out)?,
            &values::<R>(w_t)?,
            &values::<R>(state)?,
            &values::<R>(grad_out)?,
            dims,
        );
        let device = projected.device();
        let d_projected = Tensor::from_vec(d_projected, projected.shape(), device)?;
        let d_w = Tensor::from_vec(d_w, w_t.shape(), device)?;
        let d_state = Tensor::from_vec(d_state, state.shape(), device)?;
        Ok((Some(d_projected), Some(d_w), Some(d_state)))
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
        match s1 {
            CpuStorage::F32(_) => self.run(&self.saved_f32, (s1, l1), (s2, l2), (s3, l3)),
            CpuStorage::F64(_) => self.run(&self.saved_f64, (s1, l1), (s2, l2), (s3, l3)),
            _ => bail!("fused LSTM: only f32 and f64"),
        }
    }

    fn bwd(
        &self,
        projected: &Tensor,
        w_t: &Tensor,
        state: &Tensor,
        out: &Tensor,
        grad_out: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let args = [projected, w_t, state, out, grad_out];
        match projected.dtype() {
            candle_core::DType::F32 => self.gradients(&self.saved_f32, args),
            candle_core::DType::F64 => self.gradients(&self.saved_f64, args),
            other => bail!("fused LSTM: no backward for {other:?}"),
        }
    }
}
