// Softmax + cross-entropy against class indices: the loss of every classifier MLP.
//
// forward (one block per row, rows grid-strided):
//   m = max_c x[c];  log_s = log sum_c exp(x[c] - m)
//   loss[row] = log_s - (x[label] - m)                        = -log softmax(x)[label]
//   with label smoothing s:  (1 - s) loss - s mean_c log softmax(x)[c]
//   lse[row]  = m + log_s       (the log-sum-exp, all that the backward needs)
// The per-row losses are the output, as gpugrad's cross_entropy op returns them; the mean
// over rows is the caller's (one small reduction).
//
// backward (elementwise over rows x classes):
//   dx[row, c] = g[row] * scale * (exp(x[row, c] - lse[row]) - q[row, c])
//   q = (1 - s) onehot(label) + s / C,  the target distribution.
// `g` is either one upstream gradient per row (g_stride 1, scale 1: the op's backward) or one
// value for all rows (g_stride 0, scale 1 / N: the gradient of the mean loss); with has_grad
// 0 it is not read and scale alone is the upstream gradient.
//
// A label outside [0, C) is never used as an index: its row's loss and gradient are NaN,
// which reports the bad label through the loss and gpugrad's anomaly detection instead of
// reading or writing out of bounds.
//
// No #include: CuPy compiles this file with NVRTC, which has the CUDA math functions and
// intrinsics built in but no standard headers; `nvcc --ptx` compiles it unchanged.

__device__ __forceinline__ float gg_exp(float x) { return expf(x); }
__device__ __forceinline__ double gg_exp(double x) { return exp(x); }
__device__ __forceinline__ float gg_log(float x) { return logf(x); }
__device__ __forceinline__ double gg_log(double x) { return log(x); }

// NaN and infinity by their bit patterns: NVRTC has no <cmath> for NAN and INFINITY.
template <typename T> __device__ __forceinline__ T gg_nan();
template <> __device__ __forceinline__ float gg_nan<float>() { return __int_as_float(0x7fc00000); }
template <> __device__ __forceinline__ double gg_nan<double>() {
    return __longlong_as_double(0x7ff8000000000000LL);
}
template <typename T> __device__ __forceinline__ T gg_inf();
template <> __device__ __forceinline__ float gg_inf<float>() { return __int_as_float(0x7f800000); }
template <> __device__ __forceinline__ double gg_inf<double>() {
    return __longlong_as_double(0x7ff0000000000000LL);
}

struct GGMax {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const {
        return a > b ? a : b;
    }
};

struct GGSum {
    template <typename T> __device__ __forceinline__ T operator()(T a, T b) const {
        return a + b;
    }
};

template <typename T, typename Op>
__device__ __forceinline__ T gg_warp_reduce(T v, Op op) {
    for (int offset = 16; offset > 0; offset >>= 1) {
        v = op(v, __shfl_down_sync(0xffffffffu, v, offset));
    }
    return v;
}

// The reduction of v over the block, returned to every thread. blockDim.x must be a
// multiple of 32 (the launcher's choice) so that every warp is full for the shuffles.
// `shared` holds one partial result per warp (at most 32 warps in a block).
template <typename T, typename Op>
__device__ T gg_block_reduce(T v, Op op, T identity, T* shared) {
    int lane = threadIdx.x & 31;
    int warp = threadIdx.x >> 5;
    int warps = blockDim.x >> 5;
    v = gg_warp_reduce(v, op);
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? shared[lane] : identity;
        v = gg_warp_reduce(v, op);
        if (lane == 0) shared[0] = v;
    }
    __syncthreads();
    T result = shared[0];
    __syncthreads();  // `shared` is free again for the caller's next reduction
    return result;
}

template <typename T>
__device__ void softmax_xent_forward(const T* logits, const long long* labels, T* loss, T* lse,
                                     long long rows, long long classes, T smoothing) {
    __shared__ T shared[32];
    for (long long row = blockIdx.x; row < rows; row += gridDim.x) {
        const T* x = logits + row * classes;

        T m = -gg_inf<T>();
        for (long long c = threadIdx.x; c < classes; c += blockDim.x) m = GGMax()(m, x[c]);
        m = gg_block_reduce(m, GGMax(), -gg_inf<T>(), shared);

        T sum_exp = T(0);
        T sum_x = T(0);  // only for label smoothing's mean of log-probabilities
        for (long long c = threadIdx.x; c < classes; c += blockDim.x) {
            sum_exp += gg_exp(x[c] - m);
            sum_x += x[c];
        }
        sum_exp = gg_block_reduce(sum_exp, GGSum(), T(0), shared);
        // smoothing is the same for the whole launch: every thread takes this branch or none,
        // as __syncthreads in the reduction requires.
        if (smoothing != T(0)) sum_x = gg_block_reduce(sum_x, GGSum(), T(0), shared);

        if (threadIdx.x == 0) {
            T log_s = gg_log(sum_exp);
            long long label = labels[row];
            T value;
            if (label < 0 || label >= classes) {
                value = gg_nan<T>();
            } else {
                value = log_s - (x[label] - m);
                if (smoothing != T(0)) {
                    T mean_log_p = sum_x / T(classes) - m - log_s;
                    value = (T(1) - smoothing) * value - smoothing * mean_log_p;
                }
            }
            loss[row] = value;
            lse[row] = m + log_s;
        }
    }
}

template <typename T>
__device__ void softmax_xent_backward(const T* logits, const long long* labels, const T* lse,
                                      const T* grad, long long grad_stride, int has_grad,
                                      T scale, T* dlogits, long long rows, long long classes,
                                      T smoothing) {
    T off = smoothing / T(classes);
    T on = (T(1) - smoothing) + off;
    long long n = rows * classes;
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        long long row = i / classes;
        long long c = i - row * classes;
        long long label = labels[row];
        T g = has_grad ? grad[row * grad_stride] * scale : scale;
        T value;
        if (label < 0 || label >= classes) {
            value = gg_nan<T>();
        } else {
            T p = gg_exp(logits[i] - lse[row]);
            value = g * (p - (c == label ? on : off));
        }
        dlogits[i] = value;
    }
}

extern "C" __global__ void softmax_xent_forward_f32(const float* logits, const long long* labels,
                                                    float* loss, float* lse, long long rows,
                                                    long long classes, float smoothing) {
    softmax_xent_forward<float>(logits, labels, loss, lse, rows, classes, smoothing);
}

extern "C" __global__ void softmax_xent_forward_f64(const double* logits,
                                                    const long long* labels, double* loss,
                                                    double* lse, long long rows,
                                                    long long classes, double smoothing) {
    softmax_xent_forward<double>(logits, labels, loss, lse, rows, classes, smoothing);
}

// dlogits may be logits itself (in place): each element is read before it is written, by the
// same thread.
extern "C" __global__ void softmax_xent_backward_f32(const float* logits, const long long* labels,
                                                     const float* lse, const float* grad,
                                                     long long grad_stride, int has_grad,
                                                     float scale, float* dlogits,
                                                     long long rows, long long classes,
                                                     float smoothing) {
    softmax_xent_backward<float>(logits, labels, lse, grad, grad_stride, has_grad, scale,
                                 dlogits, rows, classes, smoothing);
}

extern "C" __global__ void softmax_xent_backward_f64(const double* logits,
                                                     const long long* labels, const double* lse,
                                                     const double* grad, long long grad_stride,
                                                     int has_grad, double scale,
                                                     double* dlogits, long long rows,
                                                     long long classes, double smoothing) {
    softmax_xent_backward<double>(logits, labels, lse, grad, grad_stride, has_grad, scale,
                                  dlogits, rows, classes, smoothing);
}
