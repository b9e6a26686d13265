// Optimiser updates, in place on the parameter and its state, one pass over memory per
// parameter instead of the ten or so elementwise kernels of the unfused update.
//
// The formulas are gpugrad.optim's (PyTorch's), operation for operation:
//
// Adam / AdamW:
//   g' = g + wd p                       (Adam's L2 weight decay; has_l2)
//   m  = b1 m + (1 - b1) g'
//   v  = b2 v + (1 - b2) g' g'
//   denom = sqrt(v) / sqrt_bias2 + eps
//   p  = scale p - step_size (m / denom)
//   with step_size = lr / (1 - b1^t), sqrt_bias2 = sqrt(1 - b2^t), and scale = 1 - lr wd for
//   AdamW's decoupled decay (applied when scales is 1), all computed on the host per step.
//
// SGD with momentum:
//   d = g + wd p                        (has_wd)
//   buf = d on the first step, else mu buf + dampening d
//   d = d + mu buf (nesterov) or buf
//   p = p - lr d
//
// Step-dependent values are arguments, so one compiled kernel serves every step.
//
// Every operation is an explicitly rounded intrinsic (__fmul_rn, __dadd_rn, ...), which the
// compiler never contracts into a fused multiply-add: each one rounds exactly as the NumPy or
// CuPy operation it stands for, so the fused update is bit for bit the unfused one, and a run
// follows the same trajectory whichever path it takes.
//
// No #include: CuPy compiles this file with NVRTC, which has the CUDA intrinsics built in but
// no standard headers; `nvcc --ptx` compiles it unchanged.

__device__ __forceinline__ float gg_add(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double gg_add(double a, double b) { return __dadd_rn(a, b); }
__device__ __forceinline__ float gg_sub(float a, float b) { return __fsub_rn(a, b); }
__device__ __forceinline__ double gg_sub(double a, double b) { return __dsub_rn(a, b); }
__device__ __forceinline__ float gg_mul(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double gg_mul(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float gg_div(float a, float b) { return __fdiv_rn(a, b); }
__device__ __forceinline__ double gg_div(double a, double b) { return __ddiv_rn(a, b); }
__device__ __forceinline__ float gg_sqrt(float a) { return __fsqrt_rn(a); }
__device__ __forceinline__ double gg_sqrt(double a) { return __dsqrt_rn(a); }

template <typename T>
__device__ void adam_update(T* p, const T* g, T* m, T* v, long long n, T beta1,
                            T one_minus_beta1, T beta2, T one_minus_beta2, T eps, T weight_decay,
                            int has_l2, T scale, int scales, T step_size, T sqrt_bias2) {
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        T param = p[i];
        T grad = g[i];
        if (has_l2) grad = gg_add(grad, gg_mul(weight_decay, param));
        T mi = gg_add(gg_mul(beta1, m[i]), gg_mul(one_minus_beta1, grad));
        T vi = gg_add(gg_mul(beta2, v[i]), gg_mul(gg_mul(one_minus_beta2, grad), grad));
        T denom = gg_add(gg_div(gg_sqrt(vi), sqrt_bias2), eps);
        T delta = gg_mul(step_size, gg_div(mi, denom));
        if (scales) param = gg_mul(param, scale);
        p[i] = gg_sub(param, delta);
        m[i] = mi;
        v[i] = vi;
    }
}

template <typename T>
__device__ void sgd_update(T* p, const T* g, T* buf, long long n, T lr, T weight_decay,
                           int has_wd, T momentum, T dampening, int has_momentum, int nesterov,
                           int first_step) {
    long long stride = (long long)blockDim.x * gridDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        T param = p[i];
        T d = g[i];
        if (has_wd) d = gg_add(d, gg_mul(weight_decay, param));
        if (has_momentum) {
            // On the first step the buffer is not read: it may be uninitialised memory.
            T b = first_step ? d : gg_add(gg_mul(momentum, buf[i]), gg_mul(dampening, d));
            buf[i] = b;
            d = nesterov ? gg_add(d, gg_mul(momentum, b)) : b;
        }
        p[i] = gg_sub(param, gg_mul(lr, d));
    }
}

extern "C" __global__ void adam_update_f32(float* p, const float* g, float* m, float* v,
                                           long long n, float beta1, float one_minus_beta1,
                                           float beta2, float one_minus_beta2, float eps,
                                           float weight_decay, int has_l2, float scale,
                                           int scales, float step_size, float sqrt_bias2) {
    adam_update<float>(p, g, m, v, n, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                       weight_decay, has_l2, scale, scales, step_size, sqrt_bias2);
}

extern "C" __global__ void adam_update_f64(double* p, const double* g, double* m, double* v,
                                           long long n, double beta1, double one_minus_beta1,
                                           double beta2, double one_minus_beta2, double eps,
                                           double weight_decay, int has_l2, double scale,
                                           int scales, double step_size, double sqrt_bias2) {
    adam_update<double>(p, g, m, v, n, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                        weight_decay, has_l2, scale, scales, step_size, sqrt_bias2);
}

// `buf` is not read or written when has_momentum is 0.
extern "C" __global__ void sgd_update_f32(float* p, const float* g, float* buf, long long n,
                                          float lr, float weight_decay, int has_wd,
                                          float momentum, float dampening, int has_momentum,
                                          int nesterov, int first_step) {
    sgd_update<float>(p, g, buf, n, lr, weight_decay, has_wd, momentum, dampening,
                      has_momentum, nesterov, first_step);
}

extern "C" __global__ void sgd_update_f64(double* p, const double* g, double* buf, long long n,
                                          double lr, double weight_decay, int has_wd,
                                          double momentum, double dampening, int has_momentum,
                                          int nesterov, int first_step) {
    sgd_update<double>(p, g, buf, n, lr, weight_decay, has_wd, momentum, dampening,
                       has_momentum, nesterov, first_step);
}

// The same updates with the scalars that change from step to step read from device memory
// (0-d arrays): a plan replayed as a CUDA graph launches its kernels with the arguments
// they had at the capture, so the step size, bias correction, decay scale, learning rate
// and dampening must be memory the host rewrites before each replay.
extern "C" __global__ void adam_update_dev_f32(float* p, const float* g, float* m, float* v,
                                               long long n, float beta1, float one_minus_beta1,
                                               float beta2, float one_minus_beta2, float eps,
                                               float weight_decay, int has_l2,
                                               const float* scale, int scales,
                                               const float* step_size,
                                               const float* sqrt_bias2) {
    adam_update<float>(p, g, m, v, n, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                       weight_decay, has_l2, *scale, scales, *step_size, *sqrt_bias2);
}

extern "C" __global__ void adam_update_dev_f64(double* p, const double* g, double* m,
                                               double* v, long long n, double beta1,
                                               double one_minus_beta1, double beta2,
                                               double one_minus_beta2, double eps,
                                               double weight_decay, int has_l2,
                                               const double* scale, int scales,
                                               const double* step_size,
                                               const double* sqrt_bias2) {
    adam_update<double>(p, g, m, v, n, beta1, one_minus_beta1, beta2, one_minus_beta2, eps,
                        weight_decay, has_l2, *scale, scales, *step_size, *sqrt_bias2);
}

extern "C" __global__ void sgd_update_dev_f32(float* p, const float* g, float* buf, long long n,
                                              const float* lr, float weight_decay, int has_wd,
                                              float momentum, const float* dampening,
                                              int has_momentum, int nesterov, int first_step) {
    sgd_update<float>(p, g, buf, n, *lr, weight_decay, has_wd, momentum, *dampening,
                      has_momentum, nesterov, first_step);
}

extern "C" __global__ void sgd_update_dev_f64(double* p, const double* g, double* buf,
                                              long long n, const double* lr,
                                              double weight_decay, int has_wd, double momentum,
                                              const double* dampening, int has_momentum,
                                              int nesterov, int first_step) {
    sgd_update<double>(p, g, buf, n, *lr, weight_decay, has_wd, momentum, *dampening,
                       has_momentum, nesterov, first_step);
}
