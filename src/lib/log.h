/* log.h - leveled logging to stderr: "I1125 16:50:52.123456 component] message" (klog-like). */
#ifndef CK_LOG_H
#define CK_LOG_H

enum ck_log_level { CK_LOG_DEBUG, CK_LOG_INFO, CK_LOG_WARN, CK_LOG_ERROR };

void ck_log_init(const char *component, enum ck_log_level min);
void ck_log(enum ck_log_level lvl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) ck_log(CK_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  ck_log(CK_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  ck_log(CK_LOG_WARN, __VA_ARGS__)
#define log_error(...) ck_log(CK_LOG_ERROR, __VA_ARGS__)

#endif
