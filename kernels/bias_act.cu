// Bias + activation: the step after every Linear layer's matmul in an MLP, forward and
// backward, each as one pass over memory instead of two or three separate kernels.
//
//   forward:  y = act(z + b)        z (rows, cols) row-major, b (cols,), y like z
//   backward: gz = gy * act'(.)     written from the forward's output y, as gpugrad's
//                                    relu/tanh/sigmoid backward ops are:
//             identity: gy   relu: y > 0 ? gy : 0   tanh: gy (1 - y^2)   sigmoid: gy y (1 - y)
//
// The bias gradient is gz summed over rows; it is left to the caller (a column reduction
// that CuPy's sum already does well).
//
// The activation is a run-time argument rather than a template parameter: every thread of a
// launch takes the same branch, so it costs nothing measurable and keeps one kernel name per
// dtype. Codes (kept in step with gpugrad/backends/fused.py's ACTIVATIONS):
//   0 identity, 1 relu, 2 tanh, 3 sigmoid
//
// No #include: CuPy compiles this file with NVRTC, which has the CUDA math functions built
// in but no standard headers; `nvcc --ptx` compiles it unchanged.

#define GG_IDENTITY 0
#define GG_RELU 1
#define GG_TANH 2
#define GG_SIGMOID 3

// One spelling for float and double, so that the templates below read like the formulas.
__device__ __forceinline__ float gg_exp(float x) { return expf(x); }
__device__ __forceinline__ double gg_exp(double x) { return exp(x); }
__device__ __forceinline__ float gg_log1p(float x) { return log1pf(x); }
__device__ __forceinline__ double gg_log1p(double x) { return log1p(x); }
__device__ __forceinline__ float gg_tanh(float x) { return tanhf(x); }
__device__ __forceinline__ double gg_tanh(double x) { return tanh(x); }
__device__ __forceinline__ float gg_abs(float x) { return fabsf(x); }
__device__ __forceinline__ double gg_abs(double x) { return fabs(x); }

// sigmoid(x) = exp(-logaddexp(0, -x)), as gpugrad's sigmoid op computes it: no overflow for
// any x, and full relative precision for tiny results (sigmoid(-50) ~ 2e-22, not 0).
template <typename T>
__device__ __forceinline__ T gg_sigmoid(T x) {
    T t = -x;
    T larger = t > T(0) ? t : T(0);
    return gg_exp(-(larger + gg_log1p(gg_exp(-gg_abs(t)))));
}

template <typename T>
__device__ __forceinline__ T gg_activate(T x, int act) {
    switch (act) {
        case GG_RELU:
            // `x < 0 ? 0 : x`, not `x > 0 ? x : 0`: a NaN passes through, as in
            // NumPy's maximum(x, 0), so anomaly detection still sees it.
            return x < T(0) ? T(0) : x;
        case GG_TANH:
            return gg_tanh(x);
        case GG_SIGMOID:
            return gg_sigmoid(x);
        default:
            return x;
    }
}

// The local derivative times the upstream gradient, from the output y alone.
template <typename T>
__device__ __forceinline__ T gg_activation_grad(T gy, T y, int act) {
    switch (act) {
        case GG_RELU:
            return y > T(0) ? gy : T(0);
        case GG_TANH:
            return gy * (T(1) - y * y);
        case GG_SIGMOID:
            return gy * y * (T(1) - y);
        default:
            return gy;
    }
}

// Grid-stride loops: any launch size covers any n, and n counts in 64 bits.
template <typename T>
__device__ void bias_act_forward(const T* z, const T* bias, T* y, long long n, long long cols,
                                 int has_bias, int act) {
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        T x = z[i];
        if (has_bias) x += bias[i % cols];
        y[i] = gg_activate(x, act);
    }
}

template <typename T>
__device__ void bias_act_backward(const T* gy, const T* y, T* gz, long long n, int act) {
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        gz[i] = gg_activation_grad(gy[i], y[i], act);
    }
}

// y may be z itself (in place); `bias` is not read when has_bias is 0.
extern "C" __global__ void bias_act_forward_f32(const float* z, const float* bias, float* y,
                                                long long n, long long cols, int has_bias,
                                                int act) {
    bias_act_forward<float>(z, bias, y, n, cols, has_bias, act);
}

extern "C" __global__ void bias_act_forward_f64(const double* z, const double* bias, double* y,
                                                long long n, long long cols, int has_bias,
                                                int act) {
    bias_act_forward<double>(z, bias, y, n, cols, has_bias, act);
}

// gz may be gy itself (in place).
extern "C" __global__ void bias_act_backward_f32(const float* gy, const float* y, float* gz,
                                                 long long n, int act) {
    bias_act_backward<float>(gy, y, gz, n, act);
}

extern "C" __global__ void bias_act_backward_f64(const double* gy, const double* y, double* gz,
                                                 long long n, int act) {
    bias_act_backward<double>(gy, y, gz, n, act);
}
