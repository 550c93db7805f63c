/* Monotonic time for latencies, timeouts and benchmarks. */
#ifndef SP_BASE_CLOCK_H
#define SP_BASE_CLOCK_H

/* Milliseconds on CLOCK_MONOTONIC (an arbitrary origin). */
double sp_now_ms(void);

#endif
