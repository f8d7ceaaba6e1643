/* bev_write.h — write a plain socket bufferevent's output now, not on the
 * loop's next turn.
 *
 * libevent writes a socket bufferevent's output when the loop next polls the
 * socket for writability: a turn of its own per write (an epoll_wait, and
 * epoll_ctl to watch and unwatch). The HTTP server's replies and the Redis
 * client's commands are written right after the callbacks that made them,
 * in the same turn, through this one function. Plain sockets only: an
 * OpenSSL bufferevent writes its records itself. */
#ifndef AGENTMESH_BEV_WRITE_H
#define AGENTMESH_BEV_WRITE_H

struct bufferevent;

/* Writes what the output holds, as much as the socket takes. 1 when
 * something was written and nothing is left; 0 otherwise (nothing to write,
 * a partial write, or an error). What is left stays queued: the bufferevent
 * writes it when the socket is writable, and reports an error on its next
 * read or write, as it would have anyway. */
int bev_write_now(struct bufferevent *bev);

#endif
