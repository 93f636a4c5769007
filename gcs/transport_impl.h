/* Internals shared by the transport realizations (gcs/unix/); not for users. */
#ifndef GCS_TRANSPORT_IMPL_H
#define GCS_TRANSPORT_IMPL_H

#include "gcs/transport.h"

struct gcs_listener {
    void (*close)(struct gcs_listener *l); /* stop + free asynchronously */
    uint32_t port;
    gcs_accept_cb cb;
    void *opaque;
};

/* Allocates a uv_pipe_t, accepts a pending connection of server into it and
 * hands it to the listener's callback (or reports the error). */
void gcs_listener_deliver_accept(struct gcs_listener *l, uv_stream_t *server, int status);

#endif
