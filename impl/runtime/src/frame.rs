//! Frames: the unit of every byte stream aver writes — TCP between nodes and clients, and trace
//! files.
//!
//! ```text
//! [u32 body length, little endian][u32 CRC-32 of the body, little endian][body: postcard]
//! ```
//!
//! The length is checked against a maximum **before** anything is allocated, so a peer that
//! announces a 4 GiB frame costs nothing; the CRC catches corruption that TCP's 16-bit
//! checksum lets through and, in files, torn or flipped bytes. Postcard is not
//! self-describing: every body is an enum whose variants are only ever appended, and the
//! handshake carries a protocol version.

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes before the body: length and CRC.
pub const HEADER_LEN: usize = 8;

/// Default largest body accepted between nodes: an `InstallSnapshot` carries the whole
/// snapshot in one message, so this bounds the service state that can be replicated.
pub const FRAME_BODY_MAX_DEFAULT: usize = 64 << 20;

/// Largest body accepted before a handshake completed (a stranger gets no more).
pub const HANDSHAKE_BODY_MAX: usize = 1 << 10;

/// What is wrong with a frame. Every variant says what was seen, so a counter and a log line
/// can name it.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The announced body length exceeds the limit (nothing was allocated).
    #[error("frame body of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// Announced length.
        len: u64,
        /// The limit in force.
        max: u64,
    },
    /// The body's CRC does not match the header.
    #[error("frame checksum mismatch: header says {stored:#010x}, body has {computed:#010x}")]
    Checksum {
        /// CRC in the header.
        stored: u32,
        /// CRC of the bytes received.
        computed: u32,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({have} of {need} bytes)")]
    Truncated {
        /// Bytes the frame needs.
        need: u64,
        /// Bytes that were there.
        have: u64,
    },
    /// The body passed its CRC but is not a valid encoding of the expected type.
    #[error("frame body does not decode: {0}")]
    Decode(#[from] postcard::Error),
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// True for errors caused by the bytes received (as opposed to the connection): these are
    /// counted as malformed input.
    pub fn is_malformed(&self) -> bool {
        !matches!(self, FrameError::Io(_))
    }
}

/// Appends one frame holding `value` to `out`. Fails (leaving `out` as it was) if the body
/// would exceed `max`.
pub fn encode<T: Serialize>(value: &T, max: usize, out: &mut Vec<u8>) -> Result<(), FrameError> {
    let start = out.len();
    out.extend_from_slice(&[0; HEADER_LEN]);
    let encoded = postcard::to_extend(value, std::mem::take(out));
    *out = match encoded {
        Ok(v) => v,
        Err(e) => return Err(FrameError::Decode(e)),
    };
    let len = out.len() - start - HEADER_LEN;
    if len > max {
        out.truncate(start);
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: max as u64,
        });
    }
    let crc = crc32fast::hash(&out[start + HEADER_LEN..]);
    out[start..start + 4].copy_from_slice(&(len as u32).to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// One frame as a new buffer.
pub fn encode_to_vec<T: Serialize>(value: &T, max: usize) -> Result<Vec<u8>, FrameError> {
    let mut out = Vec::new();
    encode(value, max, &mut out)?;
    Ok(out)
}

/// Reads the header at the start of `buf`: `(body length, crc)`, or `None` if fewer than
/// [`HEADER_LEN`] bytes are there. Fails if the length exceeds `max`.
pub fn parse_header(buf: &[u8], max: usize) -> Result<Option<(usize, u32)>, FrameError> {
    if buf.len() < HEADER_LEN {
        return Ok(None);
    }
    let len = u32::from_le_bytes(buf[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes"));
    if len as u64 > max as u64 {
        return Err(FrameError::TooLarge {
            len: len as u64,
            max: max as u64,
        });
    }
    Ok(Some((len as usize, crc)))
}

/// Splits the first complete frame off `buf`: its CRC-checked body and the bytes it used.
/// `Ok(None)`: `buf` holds only part of a frame.
pub fn split_frame(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, FrameError> {
    let Some((len, stored)) = parse_header(buf, max)? else {
        return Ok(None);
    };
    let Some(body) = buf.get(HEADER_LEN..HEADER_LEN + len) else {
        return Ok(None);
    };
    check_crc(body, stored)?;
    Ok(Some((body, HEADER_LEN + len)))
}

/// Decodes a body (after its CRC was checked). Trailing bytes are an error: a body is exactly
/// one value.
pub fn decode_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, FrameError> {
    let (value, rest) = postcard::take_from_bytes(body)?;
    if !rest.is_empty() {
        return Err(FrameError::Decode(postcard::Error::DeserializeBadEncoding));
    }
    Ok(value)
}

fn check_crc(body: &[u8], stored: u32) -> Result<(), FrameError> {
    let computed = crc32fast::hash(body);
    if computed != stored {
        return Err(FrameError::Checksum { stored, computed });
    }
    Ok(())
}

/// Reads one frame's body into `buf` (replacing its contents). `Ok(false)`: the stream ended
/// cleanly between frames. A frame longer than `max` is refused before it is read.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<bool, FrameError> {
    let mut header = [0u8; HEADER_LEN];
    let mut have = 0;
    while have < HEADER_LEN {
        let n = reader.read(&mut header[have..]).await?;
        if n == 0 {
            if have == 0 {
                return Ok(false);
            }
            return Err(FrameError::Truncated {
                need: HEADER_LEN as u64,
                have: have as u64,
            });
        }
        have += n;
    }
    let (len, stored) = parse_header(&header, max)?.expect("a whole header");
    buf.clear();
    buf.resize(len, 0);
    if let Err(e) = reader.read_exact(buf).await {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            return Err(FrameError::Truncated {
                need: (HEADER_LEN + len) as u64,
                have: HEADER_LEN as u64,
            });
        }
        return Err(e.into());
    }
    check_crc(buf, stored)?;
    Ok(true)
}

/// Reads and decodes one frame. `Ok(None)`: clean end of stream.
pub async fn read_value<R: AsyncRead + Unpin, T: DeserializeOwned>(
    reader: &mut R,
    max: usize,
    buf: &mut Vec<u8>,
) -> Result<Option<T>, FrameError> {
    if !read_frame(reader, max, buf).await? {
        return Ok(None);
    }
    decode_body(buf).map(Some)
}

/// Encodes and writes one frame, then flushes.
pub async fn write_value<W: AsyncWrite + Unpin, T: Serialize>(
    writer: &mut W,
    value: &T,
    max: usize,
) -> Result<(), FrameError> {
    let bytes = encode_to_vec(value, max)?;
    writer.write_all(&bytes).await?;
    writer.flush().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Serialize, serde::Deserialize, Debug, PartialEq, Clone)]
    enum Body {
        A(u64),
        B(String, Vec<u8>),
    }

    #[test]
    fn round_trip_and_split() {
        let mut out = Vec::new();
        encode(&Body::A(7), 1024, &mut out).unwrap();
        encode(&Body::B("x".into(), vec![1, 2, 3]), 1024, &mut out).unwrap();
        let (body, used) = split_frame(&out, 1024).unwrap().unwrap();
        assert_eq!(decode_body::<Body>(body).unwrap(), Body::A(7));
        let (body, used2) = split_frame(&out[used..], 1024).unwrap().unwrap();
        assert_eq!(
            decode_body::<Body>(body).unwrap(),
            Body::B("x".into(), vec![1, 2, 3])
        );
        assert_eq!(used + used2, out.len());
        assert!(split_frame(&out[..used - 1], 1024).unwrap().is_none());
    }

    #[test]
    fn oversized_frames_are_refused_on_both_sides() {
        let big = Body::B(String::new(), vec![0; 100]);
        let mut out = vec![9];
        assert!(matches!(
            encode(&big, 50, &mut out),
            Err(FrameError::TooLarge { .. })
        ));
        assert_eq!(out, vec![9], "a refused frame leaves the buffer as it was");
        let bytes = encode_to_vec(&big, 1000).unwrap();
        assert!(matches!(
            split_frame(&bytes, 50),
            Err(FrameError::TooLarge { len: 103, max: 50 })
        ));
        // A header announcing 4 GiB is refused from the header alone.
        let header = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert!(matches!(
            split_frame(&header, 1 << 20),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn flipped_bits_fail_the_checksum() {
        let mut bytes = encode_to_vec(&Body::A(123456), 64).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x10;
        assert!(matches!(
            split_frame(&bytes, 64),
            Err(FrameError::Checksum { .. })
        ));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn async_reader_reports_clean_end_and_truncation() {
        let bytes = encode_to_vec(&Body::A(1), 64).unwrap();
        let mut buf = Vec::new();
        let mut whole: &[u8] = &bytes;
        let v: Option<Body> = read_value(&mut whole, 64, &mut buf).await.unwrap();
        assert_eq!(v, Some(Body::A(1)));
        let v: Option<Body> = read_value(&mut whole, 64, &mut buf).await.unwrap();
        assert_eq!(v, None);
        let mut cut: &[u8] = &bytes[..bytes.len() - 1];
        let r: Result<Option<Body>, _> = read_value(&mut cut, 64, &mut buf).await;
        assert!(matches!(r, Err(FrameError::Truncated { .. })));
        let mut cut: &[u8] = &bytes[..3];
        let r: Result<Option<Body>, _> = read_value(&mut cut, 64, &mut buf).await;
        assert!(matches!(r, Err(FrameError::Truncated { .. })));
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

        /// Bad input: any byte string fed to the frame splitter and body decoder gives a value
        /// or a clear error — never a panic — and never a body longer than the limit.
        #[test]
        fn frame_decoder_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut rest: &[u8] = &bytes;
            while let Ok(Some((body, used))) = split_frame(rest, 128) {
                prop_assert!(body.len() <= 128);
                let _ = decode_body::<Body>(body);
                rest = &rest[used..];
            }
        }

        /// Every encodable value survives the round trip, and any single flipped bit in a
        /// frame is caught (by the CRC, the length check or truncation), never accepted.
        #[test]
        fn any_single_bit_flip_is_caught(n in any::<u64>(), s in ".{0,20}", bit in 0usize..512) {
            let value = Body::B(s, n.to_le_bytes().to_vec());
            let bytes = encode_to_vec(&value, 1024).unwrap();
            let (body, _) = split_frame(&bytes, 1024).unwrap().unwrap();
            prop_assert_eq!(decode_body::<Body>(body).unwrap(), value.clone());
            let bit = bit % (bytes.len() * 8);
            let mut flipped = bytes.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            prop_assert!(
                !matches!(split_frame(&flipped, 1024), Ok(Some(_))),
                "a frame with bit {} flipped was accepted", bit
            );
        }
    }
}
