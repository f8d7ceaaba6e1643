/* log.h — the one logging call of the project.
 *
 * Lines go to stderr as logfmt (`ts=... level=... component=... msg="..."`),
 * one write(2) per line so threads never interleave. Never pass key material
 * or tokens: there is no redaction layer to save you, by design the callers
 * simply do not have a way to print a key (see identity.h). */
#ifndef AGENTMESH_LOG_H
#define AGENTMESH_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO = 1, LOG_WARN = 2, LOG_ERROR = 3 };

/* Minimum level printed; default LOG_INFO, AGENTMESH_LOG_LEVEL=debug|info|warn|error. */
void log_set_level(enum log_level level);
int log_parse_level(const char *name, enum log_level *out);

void log_msg(enum log_level level, const char *component, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(comp, ...) log_msg(LOG_DEBUG, comp, __VA_ARGS__)
#define log_info(comp, ...)  log_msg(LOG_INFO, comp, __VA_ARGS__)
#define log_warn(comp, ...)  log_msg(LOG_WARN, comp, __VA_ARGS__)
#define log_error(comp, ...) log_msg(LOG_ERROR, comp, __VA_ARGS__)

#endif
