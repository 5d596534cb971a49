// SReLU (spec §4, §6.3): the value, and the backward pass with the per-element terms of the
// gradient of the four parameters (al, tl, ar, tr). F is the float type (float or double).
// Used as the preamble of CuPy ElementwiseKernels; the tests also compile it for the CPU.

template <typename F>
__device__ F nerva_xp_srelu(F z, F al, F tl, F ar, F tr) {
    if (z <= tl) return tl + al * (z - tl);
    if (z < tr) return z;
    return tr + ar * (z - tr);
}

template <typename F>
__device__ F nerva_xp_srelu_derivative(F z, F al, F tl, F ar, F tr) {
    if (z <= tl) return al;
    if (z < tr) return F(1);
    return ar;
}

// dz = dy f'(z); with left = [z <= tl] and right = [z > tl and z >= tr]:
// g_al = dy (z - tl) left, g_tl = dy (1 - al) left, g_ar = dy (z - tr) right, g_tr = dy (1 - ar) right
template <typename F>
__device__ void nerva_xp_srelu_backward(F z, F dy, F al, F tl, F ar, F tr,
                                        F& dz, F& g_al, F& g_tl, F& g_ar, F& g_tr) {
    const bool left = z <= tl;
    const bool right = z > tl && z >= tr;  // not !left: a NaN tl makes both false
    dz = dy * nerva_xp_srelu_derivative(z, al, tl, ar, tr);
    g_al = left ? dy * (z - tl) : F(0);
    g_tl = left ? dy * (F(1) - al) : F(0);
    g_ar = right ? dy * (z - tr) : F(0);
    g_tr = right ? dy * (F(1) - ar) : F(0);
}
