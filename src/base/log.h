/* Logging to stderr, one line per call, safe from any thread. */
#ifndef SP_BASE_LOG_H
#define SP_BASE_LOG_H

typedef enum sp_log_level { SP_LOG_DEBUG, SP_LOG_INFO, SP_LOG_WARN, SP_LOG_ERROR } sp_log_level;

void sp_log_set_level(sp_log_level level);
void sp_log(sp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define SP_DEBUG(...) sp_log(SP_LOG_DEBUG, __VA_ARGS__)
#define SP_INFO(...)  sp_log(SP_LOG_INFO, __VA_ARGS__)
#define SP_WARN(...)  sp_log(SP_LOG_WARN, __VA_ARGS__)
#define SP_ERROR(...) sp_log(SP_LOG_ERROR, __VA_ARGS__)

#endif
