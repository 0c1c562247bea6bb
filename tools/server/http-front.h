// The connection layer of power-sampling-server, in front of cpp-httplib 0.11 (Debian's).
//
// httplib parses and routes; this layer owns each connection and receives every request whole
// before httplib sees it, because 0.11 on its own
//   * reads a chunked body of any size (--max-body applies only to Content-Length),
//   * times each read, not the request (a client sending a byte every few seconds holds an HTTP
//     thread forever),
//   * drops pipelined requests (its per-request stream buffers bytes past the request and throws
//     them away),
//   * cannot tell a handler whether its client went away.
// So, per request: the head (at most max_head bytes) and the body (at most max_body bytes of
// content, whatever the transfer encoding) must arrive within request_timeout of the first
// wait; otherwise the answer is 431, 413 or 408 with Connection: close, and nothing is parsed.
// Bytes past the request stay in the connection's buffer for the next one, so pipelined
// requests are answered in order. Handlers ask client_gone() on the connection their thread
// serves (current_connection()).
//
// Thread safety: a connection is used by the one HTTP thread that serves it.
#pragma once

#include <httplib.h>
#include <sys/socket.h>

#include <chrono>
#include <cstddef>
#include <functional>
#include <string>

namespace psserver {

struct http_limits {
    size_t                    max_head = 64 * 1024;      // request line + headers, bytes
    size_t                    max_body = 1 << 20;        // content bytes, chunked or not
    std::chrono::milliseconds request_timeout{ 10000 };  // whole head + body, from the first wait
};

// The JSON error body every error answer of the server carries: {"error": {message, type, code,
// param}}; client text inside `message` (bytes that are not UTF-8) is replaced, never a throw.
std::string error_json(int status, const std::string & message, const std::string & field = "");

class connection : public httplib::Stream {
public:
    connection(int fd, const http_limits & limits);

    enum class outcome { request, closed, timeout, head_too_large, body_too_large, malformed };
    // Receives the next request whole into the buffer (bytes already buffered count). closed:
    // the client closed or stayed silent before sending a byte of it.
    outcome receive_request(std::chrono::milliseconds idle_timeout, std::string & why);
    // Drops the request httplib has just processed; pipelined bytes after it stay.
    void consume_request();

    // Whether the client is gone: a reset, or a close noticed by `probe`. End of stream alone
    // can be a half-close (shutdown(SHUT_WR) after the request, which HTTP allows), so the first
    // time it is seen probe() writes something the client ignores (an interim 100 Continue, an
    // SSE comment); a client that closed answers that with a reset. probe() returning false
    // (the write failed, or no probe is possible) also means gone.
    bool client_gone(const std::function<bool()> & probe);
    // Writes bytes as they are, outside httplib's response (the interim 100 Continue).
    bool write_raw(const std::string & bytes);
    // Answers with an error and Connection: close (the caller then closes).
    void write_error(int status, const std::string & message);
    // Stops sending, reads what the client still sends for a moment (so that closing with
    // unread bytes does not reset the connection before it has read our answer), and closes.
    void lingering_close();

    // httplib::Stream: reads serve the current request from the buffer, and nothing past it.
    bool    is_readable() const override;
    bool    is_writable() const override;
    ssize_t read(char * ptr, size_t size) override;
    ssize_t write(const char * ptr, size_t size) override;
    void    get_remote_ip_and_port(std::string & ip, int & port) const override;
    void    get_local_ip_and_port(std::string & ip, int & port) const override;
    int     socket() const override { return fd_; }

private:
    enum class framing { incomplete, complete, head_too_large, body_too_large, malformed };
    framing frame(std::string & why);
    bool    fill(int timeout_ms, bool & eof);  // one recv into the buffer

    int         fd_;
    http_limits limits_;
    std::string buffer_;           // the current request from offset 0, then what follows it
    size_t      read_pos_    = 0;  // httplib's read position in the current request
    size_t      request_end_ = 0;  // end of the current request (0 while it is incomplete)
    bool        probed_      = false;
    // frame()'s progress through the current request, so that each byte is scanned once.
    size_t head_end_       = 0;  // after the blank line; 0 = head not complete yet
    bool   chunked_        = false;
    size_t content_length_ = 0;
    size_t chunk_cursor_   = 0;  // start of the next chunk-size (or trailer) line
    size_t body_bytes_     = 0;  // chunk data so far
    bool   in_trailers_    = false;
};

// The connection served by the calling HTTP thread; nullptr outside a handler.
connection * current_connection();

// httplib's Server with connections run by the layer above; set_payload_max_length(),
// set_keep_alive_*() and set_write_timeout() still apply.
class guarded_server : public httplib::Server {
public:
    explicit guarded_server(const http_limits & limits) : limits_(limits) {}

    // 0.11 listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into the library):
    // a burst of 32 clients overflows it, the kernel falls back to SYN cookies, and some of
    // them were reset (test_server_load). Call after bind_to_port(); listen() again only
    // resizes the queue.
    bool set_listen_backlog(int n) { return ::listen(svr_sock_, n) == 0; }

private:
    bool process_and_close_socket(int sock) override;

    http_limits limits_;
};

}  // namespace psserver
