//! Reading a reply body from an HTTP service without trusting its size.
//!
//! `reqwest::Response::text()` reads whatever the service sends into memory; a
//! misbehaving embeddings or rerank service (or a proxy's error page that never
//! ends) would then cost memory bounded only by the request timeout. These
//! helpers stop at a byte limit instead.

use bytes::BytesMut;

/// A body read up to a limit.
#[derive(Debug)]
pub struct Capped {
    /// The bytes read (at most the limit).
    pub bytes: BytesMut,
    /// True when the service sent more than the limit; the rest was not read.
    pub truncated: bool,
}

impl Capped {
    /// The body as text (invalid UTF-8 replaced), for parsing and messages.
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.bytes)
    }
}

/// Reads `response`'s body, stopping once it passes `limit` bytes.
///
/// A declared `Content-Length` above the limit stops before any byte is read.
/// Errors are reqwest's own (a broken connection, a timeout).
pub async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Capped, reqwest::Error> {
    let declared = response.content_length().unwrap_or(0);
    if declared > limit as u64 {
        return Ok(Capped {
            bytes: BytesMut::new(),
            truncated: true,
        });
    }
    let mut bytes = BytesMut::with_capacity(declared as usize);
    while let Some(chunk) = response.chunk().await? {
        let room = limit - bytes.len();
        if chunk.len() > room {
            bytes.extend_from_slice(&chunk[..room]);
            return Ok(Capped {
                bytes,
                truncated: true,
            });
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Capped {
        bytes,
        truncated: false,
    })
}

/// A byte count for messages: `1048576` → `1 MiB`, `1500` → `1500 bytes`.
pub fn show_bytes(n: usize) -> String {
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Serves one raw HTTP/1.1 reply on a loopback port and returns its URL.
    async fn serve_once(head: &'static str, body: Vec<u8>) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = [0u8; 4096];
            let _ = tcp.read(&mut request).await;
            let _ = tcp.write_all(head.as_bytes()).await;
            let _ = tcp.write_all(&body).await;
            let _ = tcp.shutdown().await;
        });
        url
    }

    async fn fetch(url: &str, limit: usize) -> Capped {
        let response = reqwest::get(url).await.unwrap();
        read_capped(response, limit).await.unwrap()
    }

    #[tokio::test]
    async fn a_body_within_the_limit_is_read_whole() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 11\r\nconnection: close\r\n\r\n",
            b"hello world".to_vec(),
        )
        .await;
        let body = fetch(&url, 11).await;
        assert!(!body.truncated);
        assert_eq!(body.text(), "hello world");
    }

    #[tokio::test]
    async fn an_endless_body_stops_at_the_limit() {
        // No Content-Length: the size is only known by reading.
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            vec![b'x'; 300_000],
        )
        .await;
        let body = fetch(&url, 1000).await;
        assert!(body.truncated);
        assert_eq!(body.bytes.len(), 1000);
    }

    #[tokio::test]
    async fn a_declared_length_past_the_limit_is_refused_unread() {
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 5000\r\nconnection: close\r\n\r\n",
            vec![b'x'; 5000],
        )
        .await;
        let body = fetch(&url, 4999).await;
        assert!(body.truncated);
        assert!(body.bytes.is_empty());
    }

    #[test]
    fn byte_counts_read_naturally() {
        assert_eq!(show_bytes(4 * 1024 * 1024), "4 MiB");
        assert_eq!(show_bytes(1500), "1500 bytes");
    }
}
