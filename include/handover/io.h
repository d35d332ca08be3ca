/* Small I/O helpers shared by the programs. */
#ifndef HANDOVER_IO_H
#define HANDOVER_IO_H

#include <stddef.h>

/* Write all n bytes of p to fd, retrying short writes and EINTR. A socket
 * is written with send(MSG_NOSIGNAL), so a peer that has gone gives EPIPE
 * instead of a SIGPIPE that would kill the process. Returns 0 when all was
 * written, else -1 with errno set (a write of nothing reads as EIO), and
 * then an unknown part of p may have been written. */
int hov_write_all(int fd, const void *p, size_t n);

#endif
