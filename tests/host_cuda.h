// CUDA kernels run on the CPU, for tests on machines without a GPU.
//
// Included before a kernels/*.cu source and compiled with g++ (see host_cuda.py), this
// header turns the CUDA dialect the sources use into plain C++ and runs a launch the way
// the CUDA programming model defines it: every block of the grid, one after another; the
// threads of a block as fibers (ucontext) on one OS thread, each running until it
// finishes or reaches a synchronisation point:
// - __syncthreads(): a thread waits until every thread of its block has arrived;
// - __shfl_down_sync(mask, v, d): the 32 lanes of a warp meet, each reads lane + d's v.
// Shared memory (`__shared__`) is a static array, which the block's fibers share; blocks
// never overlap, so each has it to itself. The scheduler runs the fibers round after
// round in thread order, so a launch is deterministic.
//
// A launch that breaks the model fails with a message instead of hanging or guessing: a
// __syncthreads() that some threads of the block never reach (they wait at another one,
// or finished), a shuffle in a warp that is not full or with a partial mask.
//
// Arithmetic is the host's IEEE arithmetic: the explicitly rounded intrinsics (__fadd_rn,
// ...) are the plain operations, and host_cuda.py compiles with -ffp-contract=off so that
// nothing is fused into a multiply-add, as those intrinsics ensure on the GPU (where NVRTC
// contracts a plain a * b + c by default: in bias_act.cu and softmax_xent.cu it may, which
// their tolerances allow). expf, logf, tanhf and log1pf are the C library's, which differ
// from CUDA's by an ulp or two.
#pragma once

#include <math.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#include <functional>
#include <string>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static

struct gg_dim3 {
    unsigned int x, y, z;
};

namespace gg_host {

enum class State { runnable, at_barrier, at_shuffle, done };

struct Fiber {
    ucontext_t context;
    std::vector<char> stack;
    State state = State::runnable;
};

// Everything one launch needs; one launch at a time (the tests launch from one thread).
struct Launch {
    std::function<void()> body;
    std::vector<Fiber> fibers;
    std::vector<uint64_t> shuffle_slots;  // one per thread: the value it offers its warp
    ucontext_t scheduler;
    unsigned int current = 0;
    std::string error;
};

inline Launch* launch_in_progress = nullptr;

}  // namespace gg_host

inline gg_dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace gg_host {

constexpr size_t kStackBytes = 64 * 1024;  // the kernels' frames are small; no recursion

inline void fail(const std::string& message) {
    if (launch_in_progress->error.empty()) launch_in_progress->error = message;
}

// The running fiber stops at a synchronisation point (state) and hands control back to
// the scheduler, which resumes it once the point is released.
inline void yield(State state) {
    Launch& launch = *launch_in_progress;
    Fiber& fiber = launch.fibers[launch.current];
    fiber.state = state;
    swapcontext(&fiber.context, &launch.scheduler);
}

inline void fiber_main() {
    Launch& launch = *launch_in_progress;
    launch.body();
    launch.fibers[launch.current].state = State::done;
    // Returning ends the fiber at uc_link: the scheduler.
}

// Releases the waits that every participant has reached; false if none could be.
inline bool release_waits(Launch& launch) {
    std::vector<Fiber>& fibers = launch.fibers;
    unsigned int threads = fibers.size();
    unsigned int at_barrier = 0, done = 0;
    for (const Fiber& f : fibers) {
        at_barrier += f.state == State::at_barrier;
        done += f.state == State::done;
    }
    bool released = false;
    if (at_barrier == threads) {
        for (Fiber& f : fibers) f.state = State::runnable;
        return true;
    }
    for (unsigned int first = 0; first < threads; first += 32) {
        unsigned int last = first + 32 < threads ? first + 32 : threads;
        bool all_at_shuffle = true;
        for (unsigned int t = first; t < last; ++t) {
            all_at_shuffle = all_at_shuffle && fibers[t].state == State::at_shuffle;
        }
        if (all_at_shuffle) {
            for (unsigned int t = first; t < last; ++t) fibers[t].state = State::runnable;
            released = true;
        }
    }
    if (!released && done < threads) {
        fail(at_barrier ? "__syncthreads() is not reached by every thread of the block "
                          "(some wait elsewhere or have finished)"
                        : "a warp shuffle is not reached by every lane of the warp");
    }
    return released;
}

inline void run_block(Launch& launch, const ucontext_t& blank) {
    std::vector<Fiber>& fibers = launch.fibers;
    for (unsigned int t = 0; t < fibers.size(); ++t) {
        Fiber& f = fibers[t];
        f.state = State::runnable;
        f.context = blank;  // a copy, not getcontext(): one system call less per thread
        f.context.uc_stack.ss_sp = f.stack.data();
        f.context.uc_stack.ss_size = f.stack.size();
        f.context.uc_link = &launch.scheduler;
        makecontext(&f.context, fiber_main, 0);
    }
    for (;;) {
        bool ran = false;
        for (unsigned int t = 0; t < fibers.size() && launch.error.empty(); ++t) {
            if (fibers[t].state != State::runnable) continue;
            launch.current = t;
            threadIdx = {t, 0, 0};
            swapcontext(&launch.scheduler, &fibers[t].context);
            ran = true;
        }
        if (!launch.error.empty()) return;
        if (!ran && !release_waits(launch)) return;  // all done, or stuck (error set)
    }
}

// Runs body() as every thread of a grid x block launch (1-D, as the kernels use);
// returns "" or what went wrong.
inline std::string launch(unsigned int grid, unsigned int block, std::function<void()> body) {
    if (grid == 0 || block == 0 || block > 1024) {
        return "a launch needs 1 to 2^31 - 1 blocks of 1 to 1024 threads; got " +
               std::to_string(grid) + " x " + std::to_string(block);
    }
    Launch launch;
    launch.body = std::move(body);
    launch.fibers.resize(block);
    for (Fiber& f : launch.fibers) f.stack.resize(kStackBytes);
    launch.shuffle_slots.resize(block);
    launch_in_progress = &launch;
    gridDim = {grid, 1, 1};
    blockDim = {block, 1, 1};
    ucontext_t blank;
    getcontext(&blank);
    for (unsigned int b = 0; b < grid && launch.error.empty(); ++b) {
        blockIdx = {b, 0, 0};
        run_block(launch, blank);
    }
    launch_in_progress = nullptr;
    return launch.error;
}

}  // namespace gg_host

inline void __syncthreads() { gg_host::yield(gg_host::State::at_barrier); }

template <typename T>
inline T __shfl_down_sync(unsigned int mask, T value, unsigned int delta) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "a shuffle moves at most 8 bytes");
    gg_host::Launch& launch = *gg_host::launch_in_progress;
    unsigned int t = threadIdx.x;
    unsigned int warp_start = t & ~31u;
    if (mask != 0xffffffffu) gg_host::fail("a warp shuffle with a partial mask");
    if (warp_start + 32 > blockDim.x) gg_host::fail("a warp shuffle in a warp that is not full");
    memcpy(&launch.shuffle_slots[t], &value, sizeof(T));
    gg_host::yield(gg_host::State::at_shuffle);  // every lane has offered its value
    T result = value;  // a source lane past the warp's end: the lane keeps its own value
    if ((t & 31u) + delta < 32 && t + delta < blockDim.x) {
        memcpy(&result, &launch.shuffle_slots[t + delta], sizeof(T));
    }
    gg_host::yield(gg_host::State::at_shuffle);  // every lane has read before slots change
    return result;
}

inline float __int_as_float(int bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

inline double __longlong_as_double(long long bits) {
    double value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

inline float __fadd_rn(float a, float b) { return a + b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline float __fsqrt_rn(float a) { return sqrtf(a); }
inline double __dsqrt_rn(double a) { return sqrt(a); }
