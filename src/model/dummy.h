/* --load-format dummy (vLLM's flag): random weights sized from config.json
 * alone, for shapes whose files would not fit the disk. A weight's values
 * are a function of a key: the number of the (never read) host
 * mapping that stands for its bytes and the offset in it
 * (sp_weights_dummy_key), so the CPU (which fills real memory) and the
 * CUDA backend (which fills device memory at upload) make the same values
 * for the same model. Values are uniform in [-a, a] with a = sqrt(3 / cols), so
 * a row has unit variance times 1 / cols, as a Linear layer's init. */
#ifndef SP_MODEL_DUMMY_H
#define SP_MODEL_DUMMY_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define SP_DUMMY_FN static __host__ __device__ inline
#else
#define SP_DUMMY_FN static inline
#endif

/* splitmix64: a stateless mix of a 64-bit counter */
SP_DUMMY_FN uint64_t sp_dummy_mix(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The bf16 bits of the value with key k (2 bytes apart per element). */
SP_DUMMY_FN uint16_t sp_dummy_bf16(uint64_t k, float a) {
    uint64_t h = sp_dummy_mix(k >> 1);
    float u = (float)(h >> 40) * (1.0f / 16777216.0f); /* [0, 1) */
    float v = (2.0f * u - 1.0f) * a;
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    uint32_t r = bits + 0x7fffu + ((bits >> 16) & 1u); /* round to nearest even */
    return (uint16_t)(r >> 16);
}

#endif
