// Softmax cross-entropy (spec §5), one element at a time, given per row the maximum m and the
// log-sum-exp s = log(sum_j exp(y_j - m)), so that y - m - s is the stable log-softmax.
// F is the float type; float kernels call expf, double kernels exp.

__device__ inline float nerva_xp_exp(float x) { return expf(x); }
__device__ inline double nerva_xp_exp(double x) { return exp(x); }

// the loss term -t (y - m - s); the loss is the sum of the terms
template <typename F>
__device__ F nerva_xp_softmax_cross_entropy_term(F y, F t, F m, F s) {
    return -t * (y - m - s);
}

// the gradient softmax(y) r - t, with r the sum of the row's targets
template <typename F>
__device__ F nerva_xp_softmax_cross_entropy_gradient(F y, F t, F m, F s, F r) {
    return nerva_xp_exp(y - m - s) * r - t;
}
