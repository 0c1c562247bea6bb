#include "http-front.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <arpa/inet.h>
#include <cctype>
#include <cerrno>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

using json = nlohmann::json;

namespace psserver {

namespace {

using clock_type = std::chrono::steady_clock;

thread_local connection * t_current = nullptr;

constexpr size_t recv_size        = 64 * 1024;
constexpr size_t max_chunk_line   = 1024;
constexpr int    write_timeout_ms = 10000;
constexpr int    linger_ms        = 2000;
// Raw bytes a chunked body may take for its content: framing of tiny chunks ("1\r\nx\r\n" is
// 6 bytes per byte) is bounded too, so the buffer never holds more than this.
constexpr size_t max_framing_ratio = 4;

const char * status_text(int status) {
    switch (status) {
        case 400: return "Bad Request";
        case 408: return "Request Timeout";
        case 413: return "Payload Too Large";
        case 431: return "Request Header Fields Too Large";
        default: return "Error";
    }
}

std::string lower(std::string s) {
    for (char & c : s) c = char(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::string trim(const std::string & s) {
    const size_t b = s.find_first_not_of(" \t");
    if (b == std::string::npos) return "";
    return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

void address_of(const sockaddr_storage & a, std::string & ip, int & port) {
    char text[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
        const auto & v4 = reinterpret_cast<const sockaddr_in &>(a);
        inet_ntop(AF_INET, &v4.sin_addr, text, sizeof(text));
        port = ntohs(v4.sin_port);
    } else if (a.ss_family == AF_INET6) {
        const auto & v6 = reinterpret_cast<const sockaddr_in6 &>(a);
        inet_ntop(AF_INET6, &v6.sin6_addr, text, sizeof(text));
        port = ntohs(v6.sin6_port);
    }
    ip = text;
}

}  // namespace

std::string error_json(int status, const std::string & message, const std::string & field) {
    json e     = { { "message", message },
                   { "type", status >= 500 ? "server_error" : "invalid_request_error" },
                   { "code", status } };
    e["param"] = field.empty() ? json(nullptr) : json(field);
    return json{ { "error", e } }.dump(-1, ' ', false, json::error_handler_t::replace);
}

connection::connection(int fd, const http_limits & limits) : fd_(fd), limits_(limits) {}

connection * current_connection() { return t_current; }

bool connection::fill(int timeout_ms, bool & eof) {
    eof = false;
    pollfd    p{ fd_, POLLIN, 0 };
    const int ready = poll(&p, 1, std::max(0, timeout_ms));
    if (ready <= 0) return ready == 0 || errno == EINTR;  // nothing yet
    const size_t old = buffer_.size();
    buffer_.resize(old + recv_size);
    const ssize_t n = recv(fd_, &buffer_[old], recv_size, MSG_DONTWAIT);
    buffer_.resize(old + size_t(std::max<ssize_t>(0, n)));
    if (n == 0) eof = true;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return false;
    return true;
}

connection::framing connection::frame(std::string & why) {
    if (head_end_ == 0) {
        const size_t blank = buffer_.find("\r\n\r\n");
        if (blank == std::string::npos) {
            return buffer_.size() > limits_.max_head ? framing::head_too_large : framing::incomplete;
        }
        if (blank + 4 > limits_.max_head) return framing::head_too_large;
        head_end_              = blank + 4;
        bool        has_length = false;
        std::string encoding;
        size_t      line = buffer_.find("\r\n") + 2;  // past the request line
        while (line < blank + 2) {
            const size_t end   = buffer_.find("\r\n", line);
            const size_t colon = buffer_.find(':', line);
            if (colon != std::string::npos && colon < end) {
                const std::string name  = lower(trim(buffer_.substr(line, colon - line)));
                const std::string value = trim(buffer_.substr(colon + 1, end - colon - 1));
                if (name == "content-length") {
                    const bool digits =
                        !value.empty() && value.size() <= 18 && std::all_of(value.begin(), value.end(), ::isdigit);
                    if (!digits || (has_length && std::stoull(value) != content_length_)) {
                        why = "Content-Length '" + value + "' is not one decimal number";
                        return framing::malformed;
                    }
                    content_length_ = std::stoull(value);
                    has_length      = true;
                } else if (name == "transfer-encoding") {
                    encoding = lower(value);
                }
            }
            line = end + 2;
        }
        if (!encoding.empty()) {
            // Both framings at once is how requests are smuggled past proxies (RFC 9112, 6.1).
            if (encoding != "chunked" || has_length) {
                why = "Transfer-Encoding '" + encoding + "'" + (has_length ? " with Content-Length" : "") +
                      ": only chunked, alone, is supported";
                return framing::malformed;
            }
            chunked_      = true;
            chunk_cursor_ = head_end_;
        } else if (content_length_ > limits_.max_body) {
            why = "body of " + std::to_string(content_length_) + " bytes";
            return framing::body_too_large;
        }
    }
    if (!chunked_) {
        if (buffer_.size() < head_end_ + content_length_) return framing::incomplete;
        request_end_ = head_end_ + content_length_;
        return framing::complete;
    }
    while (true) {
        const size_t end = buffer_.find("\r\n", chunk_cursor_);
        if (end == std::string::npos) {
            if (buffer_.size() - chunk_cursor_ > max_chunk_line) {
                why = "chunk-size line longer than " + std::to_string(max_chunk_line) + " bytes";
                return framing::malformed;
            }
            return framing::incomplete;
        }
        if (in_trailers_) {
            if (end == chunk_cursor_) {  // the blank line that ends the trailers
                request_end_ = end + 2;
                return framing::complete;
            }
            chunk_cursor_ = end + 2;
            if (chunk_cursor_ - head_end_ > max_framing_ratio * limits_.max_body + limits_.max_head) {
                why = "chunk trailers too long";
                return framing::malformed;
            }
            continue;
        }
        std::string       size_line = buffer_.substr(chunk_cursor_, end - chunk_cursor_);
        const std::string size_text = trim(size_line.substr(0, size_line.find(';')));  // ';' starts extensions
        if (size_text.empty() || size_text.size() > 15 ||
            !std::all_of(size_text.begin(), size_text.end(), ::isxdigit)) {
            why = "chunk size '" + size_text.substr(0, 32) + "' is not a hexadecimal number";
            return framing::malformed;
        }
        const size_t size = std::stoull(size_text, nullptr, 16);
        if (size == 0) {
            in_trailers_  = true;
            chunk_cursor_ = end + 2;
            continue;
        }
        if (body_bytes_ + size > limits_.max_body) {
            why = "chunked body of at least " + std::to_string(body_bytes_ + size) + " bytes";
            return framing::body_too_large;
        }
        if (end + 2 - head_end_ > max_framing_ratio * limits_.max_body + limits_.max_head) {
            why = "chunked body framed in more than " + std::to_string(max_framing_ratio) + " bytes per byte";
            return framing::body_too_large;
        }
        if (buffer_.size() < end + 2 + size + 2) return framing::incomplete;
        if (buffer_.compare(end + 2 + size, 2, "\r\n") != 0) {
            why = "chunk of " + std::to_string(size) + " bytes not followed by CRLF";
            return framing::malformed;
        }
        body_bytes_ += size;
        chunk_cursor_ = end + 2 + size + 2;
    }
}

connection::outcome connection::receive_request(std::chrono::milliseconds idle_timeout, std::string & why) {
    const auto start    = clock_type::now();
    const auto deadline = start + limits_.request_timeout;
    const auto idle_end = start + std::min(idle_timeout, limits_.request_timeout);
    while (true) {
        if (!buffer_.empty()) {
            switch (frame(why)) {
                case framing::complete: read_pos_ = 0; return outcome::request;
                case framing::head_too_large:
                    why = "request head larger than " + std::to_string(limits_.max_head) + " bytes";
                    return outcome::head_too_large;
                case framing::body_too_large: return outcome::body_too_large;
                case framing::malformed: return outcome::malformed;
                case framing::incomplete: break;
            }
        }
        const auto now   = clock_type::now();
        const auto until = buffer_.empty() ? idle_end : deadline;
        if (now >= until) {
            why = "request not received whole within " + std::to_string(limits_.request_timeout.count()) + " ms";
            return buffer_.empty() ? outcome::closed : outcome::timeout;
        }
        bool      eof     = false;
        const int wait_ms = int(std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count()) + 1;
        if (!fill(wait_ms, eof)) return outcome::closed;
        if (eof) {
            why = "connection closed inside a request";
            return buffer_.empty() ? outcome::closed : outcome::malformed;
        }
    }
}

void connection::consume_request() {
    buffer_.erase(0, request_end_);
    read_pos_ = request_end_ = head_end_ = content_length_ = chunk_cursor_ = body_bytes_ = 0;
    chunked_ = in_trailers_ = probed_ = false;
}

bool connection::client_gone(const std::function<bool()> & probe) {
    pollfd p{ fd_, POLLIN | POLLRDHUP, 0 };
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLERR | POLLHUP | POLLNVAL)) return true;
    bool eof = false;
    // Take in what arrived (a pipelined request stays ours), while the buffer has room.
    if (buffer_.size() < limits_.max_head + max_framing_ratio * limits_.max_body) {
        if (!fill(0, eof)) return true;
    } else {
        char c;
        eof = recv(fd_, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
    }
    if (!eof) return false;
    if (probed_) return false;  // half-closed, and the probe did not reset: still listening
    probed_ = true;
    return !probe();
}

bool connection::write_raw(const std::string & bytes) {
    return write(bytes.data(), bytes.size()) == ssize_t(bytes.size());
}

void connection::write_error(int status, const std::string & message) {
    const std::string body = error_json(status, message);
    write_raw("HTTP/1.1 " + std::to_string(status) + " " + status_text(status) +
              "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
              "\r\nConnection: close\r\n\r\n" + body);
}

void connection::lingering_close() {
    shutdown(fd_, SHUT_WR);
    const auto until = clock_type::now() + std::chrono::milliseconds(linger_ms);
    char       sink[16 * 1024];
    while (clock_type::now() < until) {
        pollfd    p{ fd_, POLLIN, 0 };
        const int left = int(std::chrono::duration_cast<std::chrono::milliseconds>(until - clock_type::now()).count());
        if (poll(&p, 1, std::max(1, left)) <= 0) break;
        if (recv(fd_, sink, sizeof(sink), MSG_DONTWAIT) <= 0) break;
    }
    close(fd_);
}

bool connection::is_readable() const { return read_pos_ < request_end_; }

bool connection::is_writable() const {
    pollfd p{ fd_, POLLOUT, 0 };
    return poll(&p, 1, write_timeout_ms) > 0 && !(p.revents & (POLLERR | POLLHUP));
}

ssize_t connection::read(char * ptr, size_t size) {
    const size_t n = std::min(size, request_end_ - read_pos_);
    std::copy_n(buffer_.data() + read_pos_, n, ptr);
    read_pos_ += n;
    return ssize_t(n);
}

ssize_t connection::write(const char * ptr, size_t size) {
    size_t sent = 0;
    while (sent < size) {
        pollfd p{ fd_, POLLOUT, 0 };
        if (poll(&p, 1, write_timeout_ms) <= 0) return -1;
        const ssize_t n = send(fd_, ptr + sent, size - sent, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (n <= 0) return -1;
        sent += size_t(n);
    }
    return ssize_t(size);
}

void connection::get_remote_ip_and_port(std::string & ip, int & port) const {
    sockaddr_storage a{};
    socklen_t        len = sizeof(a);
    if (getpeername(fd_, reinterpret_cast<sockaddr *>(&a), &len) == 0) address_of(a, ip, port);
}

void connection::get_local_ip_and_port(std::string & ip, int & port) const {
    sockaddr_storage a{};
    socklen_t        len = sizeof(a);
    if (getsockname(fd_, reinterpret_cast<sockaddr *>(&a), &len) == 0) address_of(a, ip, port);
}

bool guarded_server::process_and_close_socket(int sock) {
    connection c(sock, limits_);
    t_current = &c;
    bool ok   = true;
    // Keep-alive as httplib's own loop: at most keep_alive_max_count_ requests, each awaited
    // for keep_alive_timeout_sec_ (the first one too, bounded by the request timeout).
    for (size_t count = keep_alive_max_count_; ok && count > 0 && svr_sock_ != INVALID_SOCKET; --count) {
        std::string why;
        const auto  got = c.receive_request(std::chrono::seconds(keep_alive_timeout_sec_), why);
        if (got == connection::outcome::closed) break;
        if (got != connection::outcome::request) {
            const int status = got == connection::outcome::timeout          ? 408
                               : got == connection::outcome::head_too_large ? 431
                               : got == connection::outcome::body_too_large ? 413
                                                                            : 400;
            c.write_error(status, status == 413 ? "request body too large: " + why +
                                                      ", above --max-body = " + std::to_string(limits_.max_body)
                                  : status == 400 ? "malformed request: " + why
                                                  : why);
            break;
        }
        bool client_closes = false;
        ok                 = process_request(c, count == 1, client_closes, nullptr);
        c.consume_request();
        if (client_closes) break;
    }
    t_current = nullptr;
    c.lingering_close();
    return ok;
}

}  // namespace psserver
