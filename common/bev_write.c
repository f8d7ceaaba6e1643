/* bev_write.c — write a plain socket bufferevent's output now (bev_write.h).
 *
 * The socket bufferevent keeps its output's front frozen between its own
 * writes (so nobody drains it under it); it is thawed for this one write
 * and frozen again, exactly as bufferevent_sock.c does around its own. */
#include "common/bev_write.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>

int bev_write_now(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);
    evutil_socket_t fd = bufferevent_getfd(bev);
    if (fd < 0 || evbuffer_get_length(out) == 0)
        return 0;
    evbuffer_unfreeze(out, 1);
    int n = evbuffer_write(out, fd);
    evbuffer_freeze(out, 1);
    return n > 0 && evbuffer_get_length(out) == 0;
}
