//! The fused recurrence ([`Recurrence`]) on CUDA: the same op as on the CPU, and
//! laid out the same way. Candle's step-by-step graph launches dozens of small
//! kernels per time step; here the input projection of the whole sequence is
//! one cuBLAS product, a step is one product for the recurrent part and one
//! kernel for the gates (`src/cuda/recurrence.cu`), and the backward pass is the
//! same in reverse plus one product for the whole sequence's weight gradient.
//!
//! Buffers are addressed by raw device pointers within one call. Every launch
//! and product goes to the device's one stream, in order, so the events
//! cudarc records to order other streams are not needed; the buffers
//! themselves live until the call returns.

use std::mem::size_of;

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::cublas::sys::cublasOperation_t;
use candle_core::cuda_backend::cudarc::cublas::{CudaBlas, result as cublas};
use candle_core::cuda_backend::cudarc::driver::{
    CudaSlice, CudaStream, DevicePtr, DevicePtrMut, DeviceRepr, LaunchConfig, PushKernelArg,
    ValidAsZeroBits, result as driver,
};
use candle_core::cuda_backend::{CudaDType, WrapErr};
use candle_core::op::BackpropOp;
use candle_core::{CudaDevice, CudaStorage, DType, Layout, Result, Shape, Storage, Tensor, bail};

use crate::fused::{Dims, Recurrence};

mod ptx {
    include!(concat!(env!("OUT_DIR"), "/recurrence_ptx.rs"));
}

/// What the forward pass keeps on the GPU for the backward pass: the activated
/// gates `(time, batch, 4 * hidden)` and c of every step `(time, batch, hidden)`.
pub(crate) struct Kept<T> {
    gates: CudaSlice<T>,
    cells: CudaSlice<T>,
}

/// [`Kept`] for either float type, as the op stores it.
pub(crate) enum KeptOnGpu {
    F32(Kept<f32>),
    F64(Kept<f64>),
}

/// The float types the kernels are compiled for, with their cuBLAS product.
trait GpuReal: DeviceRepr + ValidAsZeroBits + CudaDType + Copy + Default + 'static {
    const SUFFIX: &'static str;
    const ONE: Self;
    const ZERO: Self;
    fn keep(kept: Kept<Self>) -> KeptOnGpu;
    fn kept(saved: KeptOnGpu) -> Option<Kept<Self>>;
    /// cuBLAS's column-major `c = alpha op(a) op(b) + beta c`.
    ///
    /// # Safety
    /// The pointers must address device buffers of the sizes the dimensions
    /// and leading dimensions imply.
    unsafe fn gemm(
        blas: &CudaBlas,
        ops: (cublasOperation_t, cublasOperation_t),
        dims: (i32, i32, i32),
        a: (u64, i32),
        b: (u64, i32),
        beta: Self,
        c: (u64, i32),
    ) -> Result<()>;
}

macro_rules! gpu_real {
    ($ty:ty, $suffix:literal, $variant:ident, $gemm:ident) => {
        impl GpuReal for $ty {
            const SUFFIX: &'static str = $suffix;
            const ONE: Self = 1.0;
            const ZERO: Self = 0.0;
            fn keep(kept: Kept<Self>) -> KeptOnGpu {
                KeptOnGpu::$variant(kept)
            }
            fn kept(saved: KeptOnGpu) -> Option<Kept<Self>> {
                match saved {
                    KeptOnGpu::$variant(kept) => Some(kept),
                    _ => None,
                }
            }
            unsafe fn gemm(
                blas: &CudaBlas,
                (transa, transb): (cublasOperation_t, cublasOperation_t),
                (m, n, k): (i32, i32, i32),
                (a, lda): (u64, i32),
                (b, ldb): (u64, i32),
                beta: Self,
                (c, ldc): (u64, i32),
            ) -> Result<()> {
                let alpha = Self::ONE;
                // SAFETY: as the caller promises.
                unsafe {
                    cublas::$gemm(
                        *blas.handle(),
                        transa,
                        transb,
                        m,
                        n,
                        k,
                        &alpha,
                        a as *const Self,
                        lda,
                        b as *const Self,
                        ldb,
                        &beta,
                        c as *mut Self,
                        ldc,
                    )
                }
                .w()
            }
        }
    };
}

gpu_real!(f32, "f32", F32, sgemm);
gpu_real!(f64, "f64", F64, dgemm);

/// The address `elements` values past `base`.
fn at<T>(base: u64, elements: usize) -> u64 {
    base + (elements * size_of::<T>()) as u64
}

/// A row-major matrix operand of [`matmul`]: its device address and whether
/// it is stored transposed (then the product reads it as its transpose).
#[derive(Clone, Copy)]
struct Operand {
    ptr: u64,
    transposed: bool,
}

fn plain(ptr: u64) -> Operand {
    Operand {
        ptr,
        transposed: false,
    }
}

fn transposed(ptr: u64) -> Operand {
    Operand {
        ptr,
        transposed: true,
    }
}

/// Row-major `dst (m, n) = lhs (m, k) @ rhs (k, n)`, or `dst +=` when
/// accumulating. cuBLAS is column-major, where a row-major matrix reads as its
/// transpose, so this asks it for `dst^T = rhs^T lhs^T`.
///
/// # Safety
/// Each operand must address a device buffer of its matrix's size.
unsafe fn matmul<T: GpuReal>(
    blas: &CudaBlas,
    (m, n, k): (usize, usize, usize),
    lhs: Operand,
    rhs: Operand,
    dst: u64,
    accumulate: bool,
) -> Result<()> {
    if m == 0 || n == 0 {
        return Ok(());
    }
    let dim = |d: usize| {
        i32::try_from(d)
            .map_err(|_| candle_core::Error::Msg(format!("{d} is too large for cuBLAS")))
    };
    let (m, n, k) = (dim(m)?, dim(n)?, dim(k)?);
    let op = |t: bool| {
        if t {
            cublasOperation_t::CUBLAS_OP_T
        } else {
            cublasOperation_t::CUBLAS_OP_N
        }
    };
    let lda = if rhs.transposed { k } else { n };
    let ldb = if lhs.transposed { m } else { k };
    let beta = if accumulate { T::ONE } else { T::ZERO };
    // SAFETY: as the caller promises.
    unsafe {
        T::gemm(
            blas,
            (op(rhs.transposed), op(lhs.transposed)),
            (n, m, k),
            (rhs.ptr, lda),
            (lhs.ptr, ldb),
            beta,
            (dst, n),
        )
    }
}

/// A device buffer's address, for reading.
fn read_ptr<T>(buffer: &impl DevicePtr<T>, stream: &CudaStream) -> u64 {
    buffer.device_ptr(stream).0
}

/// A device buffer's address, for writing.
fn write_ptr<T>(buffer: &mut impl DevicePtrMut<T>, stream: &CudaStream) -> u64 {
    buffer.device_ptr_mut(stream).0
}

/// Copies `elements` values between device addresses on `stream`.
///
/// # Safety
/// Both addresses must hold `elements` values.
unsafe fn copy<T>(stream: &CudaStream, dst: u64, src: u64, elements: usize) -> Result<()> {
    // SAFETY: as the caller promises.
    unsafe { driver::memcpy_dtod_async(dst, src, elements * size_of::<T>(), stream.cu_stream()) }
        .w()
}

fn launch_config(threads: usize) -> Result<LaunchConfig> {
    let threads = u32::try_from(threads).map_err(|_| {
        candle_core::Error::Msg(format!("{threads} threads is too many for one launch"))
    })?;
    Ok(LaunchConfig::for_num_elems(threads))
}

/// A contiguous storage's values as the op's type, checked.
fn values<'a, T: GpuReal>(
    storage: &'a CudaStorage,
    layout: &Layout,
    what: &str,
) -> Result<candle_core::cuda_backend::cudarc::driver::CudaView<'a, T>> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("fused LSTM on CUDA: {what} must be contiguous");
    };
    Ok(storage.as_cuda_slice::<T>()?.slice(start..end))
}

/// The forward pass: `(time + 1, batch, hidden)` (h at every step, then the
/// final c), keeping what the backward pass needs in the op.
pub(crate) fn forward(
    op: &Recurrence,
    (s1, l1): (&CudaStorage, &Layout),
    (s2, l2): (&CudaStorage, &Layout),
    (s3, l3): (&CudaStorage, &Layout),
) -> Result<(CudaStorage, Shape)> {
    let dims = op.dims(l1, l2, l3)?;
    let device = s1.device().clone();
    let (out, kept) = match s1.dtype() {
        DType::F32 => {
            let (out, kept) =
                run_forward::<f32>(op, &device, [(s1, l1), (s2, l2), (s3, l3)], dims)?;
            (
                CudaStorage::wrap_cuda_slice(out, device.clone()),
                f32::keep(kept),
            )
        }
        DType::F64 => {
            let (out, kept) =
                run_forward::<f64>(op, &device, [(s1, l1), (s2, l2), (s3, l3)], dims)?;
            (
                CudaStorage::wrap_cuda_slice(out, device.clone()),
                f64::keep(kept),
            )
        }
        other => bail!("fused LSTM on CUDA: only f32 and f64, not {other:?}"),
    };
    *op.kept_on_gpu.lock().expect("not poisoned") = Some(kept);
    let (time, batch, hidden) = dims;
    Ok((out, Shape::from((time + 1, batch, hidden))))
}

fn run_forward<T: GpuReal>(
    op: &Recurrence,
    device: &CudaDevice,
    [(s1, l1), (s2, l2), (s3, l3)]: [(&CudaStorage, &Layout); 3],
    dims: Dims,
) -> Result<(CudaSlice<T>, Kept<T>)> {
    let inputs = values::<T>(s1, l1, "the inputs")?;
    let weights = values::<T>(s2, l2, "the weights")?;
    let state = values::<T>(s3, l3, "the state")?;
    let stream = device.cuda_stream();
    let addresses = (
        read_ptr(&inputs, &stream),
        read_ptr(&weights, &stream),
        read_ptr(&state, &stream),
    );
    run_forward_at(op, device, &stream, addresses, dims)
}

/// [`run_forward`] on raw addresses (also the backward pass's recomputation).
fn run_forward_at<T: GpuReal>(
    op: &Recurrence,
    device: &CudaDevice,
    stream: &CudaStream,
    (inputs, weights, state): (u64, u64, u64),
    (time, batch, hidden): Dims,
) -> Result<(CudaSlice<T>, Kept<T>)> {
    let four = 4 * hidden;
    let step = batch * hidden;
    let blas = device.cublas_handle();
    // SAFETY (for every `unsafe` below): the dimensions were checked against
    // the inputs' shapes by `Recurrence::dims`, and each buffer written here
    // was allocated with the size it is addressed with.
    let mut out = unsafe { device.alloc::<T>((time + 1) * step)? };
    let mut gates = unsafe { device.alloc::<T>(time * batch * four)? };
    let mut cells = unsafe { device.alloc::<T>(time * step)? };
    let mut recurrent = unsafe { device.alloc::<T>(batch * four)? };
    // With its input unprojected, the op projects the whole sequence in one
    // product; the bias is added in the gate kernel, as the CPU op adds it.
    let mut projected_buffer = None;
    let (projected, w_t, bias) = match op.input_width {
        // A null bias: the projections have it already.
        None => (inputs, weights, 0u64),
        Some(width) => {
            let buffer =
                projected_buffer.insert(unsafe { device.alloc::<T>(time * batch * four)? });
            let projected = write_ptr(buffer, stream);
            unsafe {
                matmul::<T>(
                    &blas,
                    (time * batch, four, width),
                    plain(inputs),
                    plain(weights),
                    projected,
                    false,
                )?
            };
            let w_t = at::<T>(weights, width * four);
            (projected, w_t, at::<T>(w_t, hidden * four))
        }
    };
    let forward = device.get_or_load_custom_func(
        &format!("lstm_cell_forward_{}", T::SUFFIX),
        "lstm_recurrence",
        ptx::RECURRENCE,
    )?;
    let config = launch_config(step)?;
    let out_ptr = write_ptr(&mut out, stream);
    let gates_ptr = write_ptr(&mut gates, stream);
    let cells_ptr = write_ptr(&mut cells, stream);
    let recurrent_ptr = write_ptr(&mut recurrent, stream);
    let (batch_arg, hidden_arg) = (batch as i32, hidden as i32);
    for t in 0..time {
        let (h_prev, c_prev) = if t == 0 {
            (state, at::<T>(state, step))
        } else {
            (
                at::<T>(out_ptr, (t - 1) * step),
                at::<T>(cells_ptr, (t - 1) * step),
            )
        };
        unsafe {
            matmul::<T>(
                &blas,
                (batch, four, hidden),
                plain(h_prev),
                plain(w_t),
                recurrent_ptr,
                false,
            )?
        };
        let projected_t = at::<T>(projected, t * batch * four);
        let gates_t = at::<T>(gates_ptr, t * batch * four);
        let (c_new, h_new) = (at::<T>(cells_ptr, t * step), at::<T>(out_ptr, t * step));
        let mut launch = forward.builder();
        candle_core::builder_arg!(
            launch,
            projected_t,
            bias,
            recurrent_ptr,
            c_prev,
            gates_t,
            c_new,
            h_new,
            batch_arg,
            hidden_arg
        );
        unsafe { launch.launch(config) }.w()?;
    }
    let last_c = if time > 0 {
        at::<T>(cells_ptr, (time - 1) * step)
    } else {
        at::<T>(state, step)
    };
    unsafe { copy::<T>(stream, at::<T>(out_ptr, time * step), last_c, step)? };
    // Freed on the stream after the launches that read it.
    drop((recurrent, projected_buffer));
    Ok((out, Kept { gates, cells }))
}

/// The tensor of a CUDA storage's contiguous values, outside the graph.
fn tensor<T: GpuReal>(values: CudaSlice<T>, device: &CudaDevice, shape: &Shape) -> Tensor {
    let storage = Storage::Cuda(CudaStorage::wrap_cuda_slice(values, device.clone()));
    Tensor::from_storage(storage, shape.clone(), BackpropOp::none(), false)
}

/// The gradients of the op's three inputs: the inputs (or projections), the
/// weights and the initial state.
pub(crate) fn gradients(op: &Recurrence, args: [&Tensor; 5]) -> Result<[Tensor; 3]> {
    match args[0].dtype() {
        DType::F32 => gradients_as::<f32>(op, args),
        DType::F64 => gradients_as::<f64>(op, args),
        other => bail!("fused LSTM on CUDA: no backward for {other:?}"),
    }
}

fn gradients_as<T: GpuReal>(op: &Recurrence, args: [&Tensor; 5]) -> Result<[Tensor; 3]> {
    let [inputs, weights, state, out, grad_out] = args.map(Tensor::contiguous);
    let (inputs, weights, state, out, grad_out) = (inputs?, weights?, state?, out?, grad_out?);
    let dims = op.dims(inputs.layout(), weights.layout(), state.layout())?;
    let (time, batch, hidden) = dims;
    let (four, step) = (4 * hidden, batch * hidden);
    let candle_core::Device::Cuda(device) = inputs.device() else {
        bail!("fused LSTM on CUDA: the inputs are not on a CUDA device");
    };
    let stream = device.cuda_stream();
    let blas = device.cublas_handle();
    let guards = [&inputs, &weights, &state, &out, &grad_out].map(|t| t.storage_and_layout());
    let address = |index: usize, what: &str| -> Result<u64> {
        let (storage, layout) = &guards[index];
        let Storage::Cuda(storage) = &**storage else {
            bail!("fused LSTM on CUDA: {what} is not on the GPU");
        };
        // The tensors' read guards, held to the end, keep the memory.
        Ok(read_ptr(&values::<T>(storage, layout, what)?, &stream))
    };
    let inputs_ptr = address(0, "the inputs")?;
    let weights_ptr = address(1, "the weights")?;
    let state_ptr = address(2, "the state")?;
    let out_ptr = address(3, "the output")?;
    let grad_out_ptr = address(4, "the output's gradient")?;
    let w_t = match op.input_width {
        Some(width) => at::<T>(weights_ptr, width * four),
        None => weights_ptr,
    };
    let kept = op
        .kept_on_gpu
        .lock()
        .expect("not poisoned")
        .take()
        .and_then(T::kept);
    let kept = match kept {
        Some(kept) => kept,
        // Only if the backward pass runs twice: do the forward pass again.
        None => {
            run_forward_at::<T>(
                op,
                device,
                &stream,
                (inputs_ptr, weights_ptr, state_ptr),
                dims,
            )?
            .1
        }
    };
    let backward = device.get_or_load_custom_func(
        &format!("lstm_cell_backward_{}", T::SUFFIX),
        "lstm_recurrence",
        ptx::RECURRENCE,
    )?;
    // SAFETY (for every `unsafe` below): as in `run_forward_at`.
    let mut d_projected = unsafe { device.alloc::<T>(time * batch * four)? };
    let mut d_w = device.alloc_zeros::<T>(hidden * four)?;
    let mut d_state = device.alloc_zeros::<T>(2 * step)?;
    let gates_ptr = read_ptr(&kept.gates, &stream);
    let cells_ptr = read_ptr(&kept.cells, &stream);
    let d_projected_ptr = write_ptr(&mut d_projected, &stream);
    let d_w_ptr = write_ptr(&mut d_w, &stream);
    // dh and dc carried backwards live in the state's gradient: (dh, dc).
    let dh_next = write_ptr(&mut d_state, &stream);
    let dc_next = at::<T>(dh_next, step);
    // The final c is an output too.
    unsafe { copy::<T>(&stream, dc_next, at::<T>(grad_out_ptr, time * step), step)? };
    let config = launch_config(step)?;
    let (batch_arg, hidden_arg) = (batch as i32, hidden as i32);
    for t in (0..time).rev() {
        let c_prev = if t == 0 {
            at::<T>(state_ptr, step)
        } else {
            at::<T>(cells_ptr, (t - 1) * step)
        };
        let gates_t = at::<T>(gates_ptr, t * batch * four);
        let cells_t = at::<T>(cells_ptr, t * step);
        let grad_h = at::<T>(grad_out_ptr, t * step);
        let d_gates_t = at::<T>(d_projected_ptr, t * batch * four);
        let mut launch = backward.builder();
        candle_core::builder_arg!(
            launch, gates_t, cells_t, c_prev, grad_h, dh_next, dc_next, d_gates_t, batch_arg,
            hidden_arg
        );
        unsafe { launch.launch(config) }.w()?;
        // dh_{t-1} = da @ W_hh, with W_hh^T read transposed.
        unsafe {
            matmul::<T>(
                &blas,
                (batch, hidden, four),
                plain(d_gates_t),
                transposed(w_t),
                dh_next,
                false,
            )?
        };
    }
    // dW_hh^T = sum over steps of h_{t-1}^T da_t: the first step's h_{-1} is the
    // initial state, the others' are h_0 .. h_{time-2} of the output.
    if time > 0 {
        unsafe {
            matmul::<T>(
                &blas,
                (hidden, four, batch),
                transposed(state_ptr),
                plain(d_projected_ptr),
                d_w_ptr,
                false,
            )?
        };
    }
    if time > 1 {
        unsafe {
            matmul::<T>(
                &blas,
                (hidden, four, (time - 1) * batch),
                transposed(out_ptr),
                plain(at::<T>(d_projected_ptr, batch * four)),
                d_w_ptr,
                true,
            )?
        };
    }
    let rows = time * batch;
    let (d_inputs, d_weights) = match op.input_width {
        None => (d_projected, d_w),
        Some(width) => {
            let mut d_inputs = unsafe { device.alloc::<T>(rows * width)? };
            let mut d_weights = unsafe { device.alloc::<T>((width + hidden + 1) * four)? };
            let d_inputs_ptr = write_ptr(&mut d_inputs, &stream);
            let d_weights_ptr = write_ptr(&mut d_weights, &stream);
            // d inputs = d projections @ W_ih, with W_ih^T read transposed.
            unsafe {
                matmul::<T>(
                    &blas,
                    (rows, width, four),
                    plain(d_projected_ptr),
                    transposed(weights_ptr),
                    d_inputs_ptr,
                    false,
                )?
            };
            // d W_ih^T = inputs^T @ d projections.
            unsafe {
                matmul::<T>(
                    &blas,
                    (width, four, rows),
                    transposed(inputs_ptr),
                    plain(d_projected_ptr),
                    d_weights_ptr,
                    false,
                )?
            };
            unsafe {
                copy::<T>(
                    &stream,
                    at::<T>(d_weights_ptr, width * four),
                    d_w_ptr,
                    hidden * four,
                )?
            };
            let sums = device.get_or_load_custom_func(
                &format!("lstm_column_sums_{}", T::SUFFIX),
                "lstm_recurrence",
                ptx::RECURRENCE,
            )?;
            let d_bias = at::<T>(d_weights_ptr, (width + hidden) * four);
            let (rows_arg, columns_arg) = (rows as i32, four as i32);
            let mut launch = sums.builder();
            candle_core::builder_arg!(launch, d_projected_ptr, d_bias, rows_arg, columns_arg);
            unsafe { launch.launch(launch_config(four)?) }.w()?;
            (d_inputs, d_weights)
        }
    };
    drop((kept, guards));
    Ok([
        tensor(d_inputs, device, inputs.shape()),
        tensor(d_weights, device, weights.shape()),
        tensor(d_state, device, state.shape()),
    ])
}
