/* The vector type the kernels share: 16 floats, one AVX-512 register (GCC splits it on narrower CPUs). */
#ifndef PIXELFORGE_SIMD_H
#define PIXELFORGE_SIMD_H
typedef float vf __attribute__((vector_size(64)));
#define LANES 16
#endif
