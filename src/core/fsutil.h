/* Files: durable replacement and bounded reads. */
#ifndef GY_CORE_FSUTIL_H
#define GY_CORE_FSUTIL_H

#include <stddef.h>

/* Replaces `path` with `data` durably: temp file in the same directory, fsync, rename, fsync of
 * the directory (a crash leaves the old or the new file, never a torn one). Returns 0 or GY_EIO
 * with errno set. */
int gy_write_file_atomic(const char *path, const void *data, size_t len);

/* Creates a directory and its parents (mode 0755); 0 if it exists. */
int gy_mkdir_p(const char *path);

#endif
