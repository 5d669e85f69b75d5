// The LSTM cell's per-step gate arithmetic on the GPU, forward and backward:
// the CUDA counterpart of `cell_forward` and `cell_backward` in fused.rs, which
// it is tested against. The matrix products around it are cuBLAS calls made
// by fused_cuda.rs. One thread per (row, unit); gates are laid out per row as
// (input, forget, cell, output), each `hidden` wide, as PyTorch orders them.

template <typename T> __device__ __forceinline__ T sigmoid_of(T x) {
    return T(1) / (T(1) + exp(-x));
}

// One step: a = projected (+ bias) + recurrent; the activated gates go to
// `gates`, the new c and h to `c_new` and `h_new`. `bias` may be null.
template <typename T>
__device__ __forceinline__ void cell_forward(
    const T *projected, const T *bias, const T *recurrent, const T *c_prev,
    T *gates, T *c_new, T *h_new, int batch, int hidden) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= batch * hidden) return;
    const int row = n / hidden;
    const int j = n - row * hidden;
    const int base = row * 4 * hidden + j;
    T a[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
        T p = projected[base + k * hidden];
        if (bias != nullptr) p += bias[k * hidden + j];
        a[k] = p + recurrent[base + k * hidden];
    }
    const T i = sigmoid_of(a[0]);
    const T f = sigmoid_of(a[1]);
    const T g = tanh(a[2]);
    const T o = sigmoid_of(a[3]);
    gates[base] = i;
    gates[base + hidden] = f;
    gates[base + 2 * hidden] = g;
    gates[base + 3 * hidden] = o;
    const T c = f * c_prev[n] + i * g;
    c_new[n] = c;
    h_new[n] = o * tanh(c);
}

// One step back: the gradients of the gates' inputs from dh (the output's
// gradient plus dh from the next step) and dc from the next step, which is
// overwritten with dc for the step before.
template <typename T>
__device__ __forceinline__ void cell_backward(
    const T *gates, const T *cells, const T *c_prev, const T *grad_h,
    const T *dh_next, T *dc_next, T *d_gates, int batch, int hidden) {
    const int n = blockIdx.x * blockDim.x + threadIdx.x;
    if (n >= batch * hidden) return;
    const int row = n / hidden;
    const int j = n - row * hidden;
    const int base = row * 4 * hidden + j;
    const T i = gates[base];
    const T f = gates[base + hidden];
    const T g = gates[base + 2 * hidden];
    const T o = gates[base + 3 * hidden];
    const T dh = grad_h[n] + dh_next[n];
    const T tc = tanh(cells[n]);
    const T dc = dc_next[n] + dh * o * (T(1) - tc * tc);
    d_gates[base] = dc * g * i * (T(1) - i);
    d_gates[base + hidden] = dc * c_prev[n] * f * (T(1) - f);
    d_gates[base + 2 * hidden] = dc * i * (T(1) - g * g);
    d_gates[base + 3 * hidden] = dh * tc * o * (T(1) - o);
    dc_next[n] = dc * f;
}

// Sums of the columns of a row-major (rows, columns) matrix: the bias's
// gradient from the projections'. One thread per column, so reads coalesce.
template <typename T>
__device__ __forceinline__ void column_sums(const T *matrix, T *sums, int rows, int columns) {
    const int column = blockIdx.x * blockDim.x + threadIdx.x;
    if (column >= columns) return;
    T total = T(0);
    for (int r = 0; r < rows; ++r) total += matrix[(long long)r * columns + column];
    sums[column] = total;
}

#define LSTM_KERNELS(T, SUFFIX)                                                        \
    extern "C" __global__ void lstm_cell_forward_##SUFFIX(                             \
        const T *projected, const T *bias, const T *recurrent, const T *c_prev,        \
        T *gates, T *c_new, T *h_new, int batch, int hidden) {                         \
        cell_forward<T>(projected, bias, recurrent, c_prev, gates, c_new, h_new,       \
                        batch, hidden);                                                \
    }                                                                                  \
    extern "C" __global__ void lstm_cell_backward_##SUFFIX(                            \
        const T *gates, const T *cells, const T *c_prev, const T *grad_h,              \
        const T *dh_next, T *dc_next, T *d_gates, int batch, int hidden) {             \
        cell_backward<T>(gates, cells, c_prev, grad_h, dh_next, dc_next, d_gates,      \
                         batch, hidden);                                               \
    }                                                                                  \
    extern "C" __global__ void lstm_column_sums_##SUFFIX(                              \
        const T *matrix, T *sums, int rows, int columns) {                             \
        column_sums<T>(matrix, sums, rows, columns);                                   \
    }

LSTM_KERNELS(float, f32)
LSTM_KERNELS(double, f64)
