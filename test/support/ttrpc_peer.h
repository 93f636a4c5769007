/* Test helpers for ttrpc: a raw (hand-driven) socket peer and loop pumping,
 * so a single-threaded test can talk bytes to a server or client running on
 * a real uv loop. All waits are bounded (TPEER_TIMEOUT_MS). */
#ifndef TEST_SUPPORT_TTRPC_PEER_H
#define TEST_SUPPORT_TTRPC_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define TPEER_TIMEOUT_MS 10000

/* Monotonic milliseconds. */
int64_t tpeer_now_ms(void);
/* Runs the loop without blocking for ~1 ms. */
void tpeer_pump(uv_loop_t *loop);
/* Pumps until *flag becomes true or the timeout passes; returns *flag. */
bool tpeer_pump_until(uv_loop_t *loop, const bool *flag, int timeout_ms);
/* Pumps until *counter >= target or the timeout passes. */
bool tpeer_pump_until_count(uv_loop_t *loop, const int *counter, int target, int timeout_ms);
/* Pumps for roughly ms milliseconds. */
void tpeer_pump_for(uv_loop_t *loop, int ms);

/* A private temp dir (mkdtemp) for sockets; tpeer_rmdir removes its files. */
char *tpeer_tmpdir(void);
void tpeer_rmdir(char *dir);

/* Connects a non-blocking raw socket to path; -1 on failure. */
int tpeer_connect(const char *path);
/* Creates a listening raw socket at path; -1 on failure. */
int tpeer_listen(const char *path);
/* Accepts on a raw listener while pumping; -1 on timeout. */
int tpeer_accept(uv_loop_t *loop, int listen_fd);
/* Writes everything while pumping the loop (the peer may be on it). */
bool tpeer_write(uv_loop_t *loop, int fd, const void *data, size_t len);
/* Reads exactly len bytes while pumping; false on EOF/timeout. */
bool tpeer_read(uv_loop_t *loop, int fd, void *data, size_t len);
/* True when the peer closed the connection (EOF) within the timeout. */
bool tpeer_wait_eof(uv_loop_t *loop, int fd, int timeout_ms);
/* True when nothing arrives within ms. */
bool tpeer_quiet(uv_loop_t *loop, int fd, int ms);

struct tpeer_frame {
    uint32_t length;
    uint32_t stream_id;
    uint8_t type;
    uint8_t flags;
    uint8_t *body; /* malloc'ed (NULL for length 0) */
};

bool tpeer_read_frame(uv_loop_t *loop, int fd, struct tpeer_frame *frame);
bool tpeer_write_frame(uv_loop_t *loop, int fd, uint32_t stream_id, uint8_t type, const void *body,
                       size_t len);
/* Writes a Request frame built from the given fields. */
bool tpeer_send_request(uv_loop_t *loop, int fd, uint32_t stream_id, const char *service,
                        const char *method, const void *payload, size_t len, int64_t timeout_nano);
/* Reads a Response frame and decodes it: code, message (caller frees) and
 * payload (caller frees, *payload_len set). Returns the stream id, 0 on failure. */
uint32_t tpeer_read_response(uv_loop_t *loop, int fd, int *code, char **message, uint8_t **payload,
                             size_t *payload_len);

/* Closes every handle still open on the loop and runs it until empty. */
void tpeer_loop_drain(uv_loop_t *loop);

#endif
