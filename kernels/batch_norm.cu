// BatchNormalization backward (spec §6.5) in its O(N D) form, one element at a time, given the
// column sums sum_dy = sum_n DY and sum_z_dy = sum_n Z DY (which are also Dbeta and Dgamma):
//   DZ = gamma DY,  DX = (inv_sqrt_sigma / N) (N DZ - gamma sum_dy - Z gamma sum_z_dy)
// F is the float type.

template <typename F>
__device__ F nerva_xp_batch_norm_dx(F z, F dy, F gamma, F inv_sqrt_sigma, F sum_dy, F sum_z_dy,
                                    F n) {
    return inv_sqrt_sigma / n * (n * gamma * dy - gamma * sum_dy - z * (gamma * sum_z_dy));
}
