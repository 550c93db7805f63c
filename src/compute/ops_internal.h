/* Shared between ops.c, matmul.c and attention.c: the kernel table that the
 * current ISA level selected. */
#ifndef SP_COMPUTE_OPS_INTERNAL_H
#define SP_COMPUTE_OPS_INTERNAL_H

#include "compute/kernels.h"

const sp_kernel_table *sp_ops_kernels(void);

#endif
