// swish(x) = x / (1 + exp(-beta x)), one thread per element, for float and double.
// Loaded by CuPy's RawModule at first use; the generic forward in ops.py is its
// reference (the plugin's tests compare the two on a GPU).

extern "C" __global__ void swish_f32(const float* x, float* y, const float beta,
                                     const long long n) {
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i < n) {
        float v = x[i];
        y[i] = v / (1.0f + expf(-beta * v));
    }
}

extern "C" __global__ void swish_f64(const double* x, double* y, const double beta,
                                     const long long n) {
    long long i = (long long)blockDim.x * blockIdx.x + threadIdx.x;
    if (i < n) {
        double v = x[i];
        y[i] = v / (1.0 + exp(-beta * v));
    }
}
