/* Anti-aliased resampling of 8-bit RGB images, bit-exact with the kernel
 * that transformers' default (torchvision) image processors run on the CPU
 * for uint8 tensors: PyTorch's separable uint8 resampler (a port of
 * Pillow's), horizontal pass first into an 8-bit intermediate, filter
 * weights computed in double, normalised, then quantised to int16 with one
 * precision per pass, integer accumulation with a half-unit rounding offset,
 * clamped to 0..255. */
#ifndef SP_MEDIA_RESIZE_H
#define SP_MEDIA_RESIZE_H

#include <stdint.h>

#include "base/status.h"

/* PIL's resample codes, as preprocessor_config.json stores them. */
typedef enum sp_filter { SP_FILTER_BILINEAR = 2, SP_FILTER_BICUBIC = 3 } sp_filter;

/* dst (ow x oh x 3) = src (w x h x 3) resized. Same size: a copy. */
sp_status sp_resize_rgb(const uint8_t *src, int w, int h, uint8_t *dst, int ow, int oh,
                        sp_filter filter, sp_error *err);

#endif
