//! Request framing checked on the wire, under hyper.
//!
//! RFC 9112 (section 6.3) lets a server either refuse a request that has both
//! `Transfer-Encoding` and `Content-Length`, or frame it by the transfer coding alone
//! and close the connection afterwards. hyper does the latter: it drops
//! `Content-Length` before the application sees the request, so the application cannot
//! tell the request was ambiguous. Behind a proxy that framed it by `Content-Length`,
//! that is how requests are smuggled, and dcim refuses them with a 400. This stream
//! wrapper reads each request head before hyper does and, when the head holds both
//! headers, renames every `Content-Length` to [`MARK`] (a name of the same length, so
//! the bytes are rewritten in place); the API answers a request bearing [`MARK`] with
//! a 400 and closes the connection. A client that sends [`MARK`] itself only gets its
//! own request refused.
//!
//! To find each head the wrapper follows the bodies as hyper does: `Content-Length`
//! bytes, or the chunked coding (sizes, data, trailers). It holds back only the bytes
//! of an incomplete head. Where hyper refuses the request and closes the connection
//! (a head httparse rejects, a transfer coding other than chunked, a bad or
//! conflicting `Content-Length`), the wrapper lets the rest through unread. A head
//! longer than [`MAX_HEAD`] ends the connection. HTTP/2 (its preface is no HTTP/1
//! head) passes unread.
//!
//! Written by hand because neither hyper (no option for it) nor any crate offers this
//! check below hyper; the head itself is parsed by httparse, hyper's own parser.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// What `Content-Length` becomes in an ambiguous head (14 bytes, like `Content-Length`).
pub const MARK: &str = "X-Dcim-Both-CL";

/// The longest request head followed; a longer one closes the connection.
pub const MAX_HEAD: usize = 64 * 1024;

const MAX_HEADERS: usize = 128;

/// The room made for each read from the socket: hyper's own first read buffer's size.
/// It is given back while the connection waits with nothing held back.
const READ_SIZE: usize = 8 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Expecting a request head.
    Head,
    /// A body of this many more bytes.
    Body(u64),
    /// A chunk-size line: the size so far, and its number of digits.
    ChunkSize(u64, u8),
    /// The rest of a chunk-size line after the size (extensions, CR).
    ChunkSizeRest(u64),
    /// Chunk data, this many more bytes.
    ChunkData(u64),
    /// The line end after chunk data.
    ChunkDataEnd,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// Inside a trailer line.
    TrailerLine,
    /// A CR at the start of a line: the message ends at the LF.
    TrailerEnd,
    /// Not followed any more: everything passes.
    Opaque,
}

/// A request head, parsed.
enum Head {
    Partial,
    Invalid,
    Complete { len: usize, next: State },
}

/// Parses the head at the start of `buf`; when it holds both `Transfer-Encoding` and
/// `Content-Length`, renames the latter to [`MARK`] in place.
fn parse_head(buf: &mut [u8]) -> Head {
    let base = buf.as_ptr() as usize;
    let mut cl_names = vec![];
    let mut lengths = vec![];
    let (mut te, mut chunked) = (false, false);
    let len = {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        let len = match req.parse(buf) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Head::Partial,
            Err(_) => return Head::Invalid,
        };
        if req.version == Some(0) {
            // HTTP/1.0 with a transfer coding is refused by hyper.
            te = req.headers.iter().any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
            if te {
                return Head::Invalid;
            }
        }
        for h in req.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                cl_names.push(h.name.as_ptr() as usize - base);
                lengths.push(h.value);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                te = true;
                let last = h.value.rsplit(|b| *b == b',').next().unwrap_or_default();
                chunked = last.trim_ascii().eq_ignore_ascii_case(b"chunked");
            }
        }
        let lengths: Vec<Option<u64>> = lengths
            .iter()
            .map(|v| {
                let digits = v.trim_ascii();
                (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                    .then(|| std::str::from_utf8(digits).ok()?.parse().ok())
                    .flatten()
            })
            .collect();
        if te {
            if !chunked {
                return Head::Invalid;
            }
        } else if let Some(first) = lengths.first() {
            return match first {
                Some(n) if lengths.iter().all(|l| l == first) => {
                    Head::Complete { len, next: if *n == 0 { State::Head } else { State::Body(*n) } }
                }
                _ => Head::Invalid,
            };
        }
        len
    };
    if !te {
        return Head::Complete { len, next: State::Head };
    }
    for at in cl_names {
        buf[at..at + MARK.len()].copy_from_slice(MARK.as_bytes());
    }
    Head::Complete { len, next: State::ChunkSize(0, 0) }
}

/// A connection's read side, with each request head checked before hyper reads it.
pub struct Framed<S> {
    inner: S,
    buf: Vec<u8>,
    /// `buf[..sent]` went to hyper; `buf[sent..cleared]` may go; the rest is held.
    sent: usize,
    cleared: usize,
    state: State,
    eof: bool,
}

impl<S> Framed<S> {
    pub fn new(inner: S) -> Self {
        Framed { inner, buf: Vec::new(), sent: 0, cleared: 0, state: State::Head, eof: false }
    }

    /// Moves `cleared` as far as the framing allows.
    fn advance(&mut self) -> io::Result<()> {
        while self.cleared < self.buf.len() {
            let avail = (self.buf.len() - self.cleared) as u64;
            let step = |n: u64| n.min(avail) as usize;
            match self.state {
                State::Opaque => self.cleared = self.buf.len(),
                State::Head => match parse_head(&mut self.buf[self.cleared..]) {
                    Head::Partial if avail as usize > MAX_HEAD => {
                        return Err(io::Error::new(io::ErrorKind::InvalidData, "request head too large"));
                    }
                    Head::Partial => return Ok(()),
                    Head::Invalid => self.state = State::Opaque,
                    Head::Complete { len, next } => {
                        self.cleared += len;
                        self.state = next;
                    }
                },
                State::Body(n) | State::ChunkData(n) => {
                    let take = step(n);
                    self.cleared += take;
                    let left = n - take as u64;
                    self.state = match (self.state, left) {
                        (State::Body(_), 0) => State::Head,
                        (State::Body(_), l) => State::Body(l),
                        (_, 0) => State::ChunkDataEnd,
                        (_, l) => State::ChunkData(l),
                    };
                }
                _ => {
                    let b = self.buf[self.cleared];
                    self.cleared += 1;
                    self.state = chunk_byte(self.state, b);
                }
            }
        }
        Ok(())
    }
}

/// One byte of the chunked coding outside chunk data.
fn chunk_byte(state: State, b: u8) -> State {
    match state {
        State::ChunkSize(size, digits) => match (b as char).to_digit(16) {
            Some(d) if digits < 15 => State::ChunkSize(size * 16 + u64::from(d), digits + 1),
            // A size hyper cannot hold either: it fails the request and closes.
            Some(_) => State::Opaque,
            None if b == b'\n' => after_size(size),
            None => State::ChunkSizeRest(size),
        },
        State::ChunkSizeRest(size) if b == b'\n' => after_size(size),
        State::ChunkDataEnd if b == b'\n' => State::ChunkSize(0, 0),
        State::TrailerStart if b == b'\r' => State::TrailerEnd,
        State::TrailerStart | State::TrailerEnd if b == b'\n' => State::Head,
        State::TrailerStart | State::TrailerEnd | State::TrailerLine if b != b'\n' => State::TrailerLine,
        State::TrailerLine => State::TrailerStart,
        other => other,
    }
}

fn after_size(size: u64) -> State {
    if size == 0 { State::TrailerStart } else { State::ChunkData(size) }
}

impl<S: AsyncRead + Unpin> AsyncRead for Framed<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.cleared > this.sent {
                let n = (this.cleared - this.sent).min(out.remaining());
                out.put_slice(&this.buf[this.sent..this.sent + n]);
                this.sent += n;
                if this.sent == this.cleared {
                    this.buf.drain(..this.sent);
                    this.cleared = 0;
                    this.sent = 0;
                }
                return Poll::Ready(Ok(()));
            }
            this.advance()?;
            if this.cleared > this.sent {
                continue;
            }
            if this.eof {
                // An incomplete head at the end: hyper gets it, and the end.
                if this.cleared < this.buf.len() {
                    this.cleared = this.buf.len();
                    continue;
                }
                return Poll::Ready(Ok(()));
            }
            // Read straight into the buffer's spare room, left uninitialised: a zeroed
            // chunk to read into, then copied over, cost a 16 KiB memset at every read.
            this.buf.reserve(READ_SIZE);
            let read = tokio_util::io::poll_read_buf(Pin::new(&mut this.inner), cx, &mut this.buf);
            if read.is_pending() && this.buf.is_empty() {
                // A kept-alive connection waiting for its next request holds no buffer.
                this.buf = Vec::new();
            }
            if ready!(read)? == 0 {
                this.eof = true;
            }
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Framed<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// An axum-server acceptor that wraps the streams of `A` (plain TCP, or TLS) in [`Framed`].
#[derive(Clone)]
pub struct FramingAcceptor<A>(pub A);

impl<A, I, S> axum_server::accept::Accept<I, S> for FramingAcceptor<A>
where
    A: axum_server::accept::Accept<I, S>,
    A::Future: Send + 'static,
    A::Stream: AsyncRead + AsyncWrite + Unpin,
{
    type Stream = Framed<A::Stream>;
    type Service = A::Service;
    type Future = Pin<Box<dyn Future<Output = io::Result<(Self::Stream, Self::Service)>> + Send>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.0.accept(stream, service);
        Box::pin(async move {
            let (stream, service) = inner.await?;
            Ok((Framed::new(stream), service))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// What hyper would read from `input` fed in pieces of `piece` bytes.
    async fn through(input: &[u8], piece: usize) -> Vec<u8> {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let data = input.to_vec();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for c in data.chunks(piece) {
                tx.write_all(c).await.unwrap();
                tx.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
        });
        let mut out = vec![];
        Framed::new(rx).read_to_end(&mut out).await.unwrap();
        writer.await.unwrap();
        out
    }

    async fn at_every_split(input: &str) -> String {
        let whole = through(input.as_bytes(), input.len()).await;
        for piece in 1..input.len().min(40) {
            assert_eq!(through(input.as_bytes(), piece).await, whole, "fed {piece} bytes at a time");
        }
        String::from_utf8(whole).unwrap()
    }

    #[test]
    fn the_mark_is_what_the_api_refuses() {
        assert!(MARK.eq_ignore_ascii_case(dcim_api::AMBIGUOUS_FRAMING_MARK));
        assert_eq!(MARK.len(), "content-length".len());
    }

    #[tokio::test]
    async fn plain_requests_pass_unchanged() {
        let input = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n\
                     POST /b HTTP/1.1\r\nContent-Length: 21\r\n\r\n{\"transfer-encoding\":1}\
                     POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: 1\r\n\r\n\
                     GET /d HTTP/1.1\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(at_every_split(input).await, input);
    }

    #[tokio::test]
    async fn both_framings_are_marked_in_every_request() {
        let input = "POST /a HTTP/1.1\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
                     2\r\nab\r\n0\r\n\r\n\
                     POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nxyz\
                     POST /c HTTP/1.1\r\nTransfer-Encoding: gzip, chunked\r\ncontent-length: 9\r\n\r\n0\r\n\r\n";
        let out = at_every_split(input).await;
        let expected = input.replacen("Content-Length: 4", "X-Dcim-Both-CL: 4", 1).replacen(
            "content-length: 9",
            "X-Dcim-Both-CL: 9",
            1,
        );
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn a_body_that_looks_like_a_head_is_not_one() {
        let body = "GET /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let input = format!("POST /a HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        assert_eq!(at_every_split(&input).await, input);
    }

    #[tokio::test]
    async fn what_hyper_refuses_passes_unread() {
        for input in [
            "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST /a HTTP/1.1\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
            "POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        ] {
            assert_eq!(at_every_split(input).await, input);
        }
    }

    #[tokio::test]
    async fn an_endless_head_ends_the_connection() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let _ = tx.write_all(b"GET / HTTP/1.1\r\n").await;
            let _ = tx.write_all(format!("X: {}\r\n", "a".repeat(MAX_HEAD)).as_bytes()).await;
        });
        let mut out = vec![];
        let e = Framed::new(rx).read_to_end(&mut out).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(out.is_empty());
    }
}
