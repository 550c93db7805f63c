/* GGUF v3 writer, for tests and for generating benchmark models.
 *
 * Metadata is written in call order. A call with a key adds a top-level
 * key/value; a call with key == NULL adds the next element of the innermost
 * open array (begun with sp_gguf_w_begin_arr, closed automatically once its
 * n elements are written), so nested arrays are:
 *     sp_gguf_w_begin_arr(w, "k", SP_GGUF_ARRAY, 2);
 *     sp_gguf_w_arr(w, NULL, SP_GGUF_I32, ints, 3);      // element 0
 *     sp_gguf_w_str_arr(w, NULL, strs, 2);               // element 1
 * The first misuse (wrong element type, key inside an open array, bad
 * tensor size) is remembered and reported by every later call and by
 * sp_gguf_w_write. "general.alignment" (u32, a power of two) sets the
 * alignment; the default is 32.
 *
 * Tensors: shape is given outermost-first (Spindle convention) and written
 * innermost-first as GGUF requires. Data is borrowed until sp_gguf_w_write
 * (or produced then by a fill callback, one tensor at a time, so multi-GB
 * models need not fit in memory). */
#ifndef SP_FORMATS_GGUF_WRITE_H
#define SP_FORMATS_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "base/status.h"
#include "formats/gguf.h"

typedef struct sp_gguf_writer sp_gguf_writer;

sp_gguf_writer *sp_gguf_writer_new(void); /* NULL on allocation failure */
void sp_gguf_writer_free(sp_gguf_writer *w);

sp_status sp_gguf_w_u8(sp_gguf_writer *w, const char *key, uint8_t v);
sp_status sp_gguf_w_i8(sp_gguf_writer *w, const char *key, int8_t v);
sp_status sp_gguf_w_u16(sp_gguf_writer *w, const char *key, uint16_t v);
sp_status sp_gguf_w_i16(sp_gguf_writer *w, const char *key, int16_t v);
sp_status sp_gguf_w_u32(sp_gguf_writer *w, const char *key, uint32_t v);
sp_status sp_gguf_w_i32(sp_gguf_writer *w, const char *key, int32_t v);
sp_status sp_gguf_w_f32(sp_gguf_writer *w, const char *key, float v);
sp_status sp_gguf_w_bool(sp_gguf_writer *w, const char *key, int v);
sp_status sp_gguf_w_u64(sp_gguf_writer *w, const char *key, uint64_t v);
sp_status sp_gguf_w_i64(sp_gguf_writer *w, const char *key, int64_t v);
sp_status sp_gguf_w_f64(sp_gguf_writer *w, const char *key, double v);
sp_status sp_gguf_w_str(sp_gguf_writer *w, const char *key, const char *s);
sp_status sp_gguf_w_strn(sp_gguf_writer *w, const char *key, const char *s, uint64_t len);

/* A whole array of a fixed-size type: data holds n host values of that type
 * (uint8_t for BOOL). */
sp_status sp_gguf_w_arr(sp_gguf_writer *w, const char *key, sp_gguf_type elem_type,
                        const void *data, uint64_t n);
sp_status sp_gguf_w_str_arr(sp_gguf_writer *w, const char *key, const char *const *strs,
                            uint64_t n);
/* Opens an array whose n elements follow as key == NULL calls. */
sp_status sp_gguf_w_begin_arr(sp_gguf_writer *w, const char *key, sp_gguf_type elem_type,
                              uint64_t n);

/* A tensor of any ggml type (quantized data as raw blocks); nbytes must be
 * the exact size for the shape and type. */
sp_status sp_gguf_w_tensor(sp_gguf_writer *w, const char *name, uint32_t ggml_type, int ndim,
                           const int64_t *shape, const void *data, size_t nbytes);
/* Same, data produced at write time: fill(ctx, name, buf, nbytes, err). */
typedef sp_status (*sp_gguf_fill_fn)(void *ctx, const char *name, void *buf, size_t nbytes,
                                     sp_error *err);
sp_status sp_gguf_w_tensor_fill(sp_gguf_writer *w, const char *name, uint32_t ggml_type, int ndim,
                                const int64_t *shape, sp_gguf_fill_fn fill, void *ctx);

/* Writes the file (header, metadata, tensor infos, aligned data). */
sp_status sp_gguf_w_write(sp_gguf_writer *w, const char *path, sp_error *err);

#endif
