//! The MapReduce transport: one Unix-domain stream per worker, carrying length-prefixed
//! frames (`u32` little-endian length, then the postcard encoding of one
//! [`aver_core::mr::Message`]). A connection is ordered, and it closes when either process
//! dies, which is how the coordinator knows a worker is dead.

use aver_core::mr::Message;
use std::io::{self, Read, Write};

/// Largest frame accepted (an assignment carries one file name; 1 MiB is generous).
pub const FRAME_BYTES_MAX: usize = 1 << 20;

/// Writes one message as a frame and flushes.
pub fn write_frame(w: &mut impl Write, msg: &Message) -> io::Result<()> {
    let body = postcard::to_stdvec(msg).map_err(io::Error::other)?;
    assert!(
        body.len() <= FRAME_BYTES_MAX,
        "frame of {} bytes",
        body.len()
    );
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    w.write_all(&frame)?;
    w.flush()
}

/// Reads one frame. `Ok(None)` on a clean end of stream between frames.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<Message>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len > FRAME_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {len} bytes exceeds the {FRAME_BYTES_MAX}-byte limit"),
        ));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    postcard::from_bytes(&body)
        .map(Some)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("bad frame: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use aver_core::mr::{Attempt, TaskId, ToCoordinator};

    #[test]
    fn frames_round_trip_and_reject_garbage() {
        let msg = Message::ToCoordinator(ToCoordinator::Finished {
            task: TaskId::Reduce(3),
            attempt: Attempt(2),
        });
        let mut buf = Vec::new();
        write_frame(&mut buf, &msg).unwrap();
        write_frame(&mut buf, &msg).unwrap();
        let mut r = &buf[..];
        assert_eq!(read_frame(&mut r).unwrap(), Some(msg.clone()));
        assert_eq!(read_frame(&mut r).unwrap(), Some(msg));
        assert_eq!(read_frame(&mut r).unwrap(), None);
        let huge = (FRAME_BYTES_MAX as u32 + 1).to_le_bytes();
        assert!(read_frame(&mut &huge[..]).is_err());
        let junk = [2u8, 0, 0, 0, 0xff, 0xff];
        assert!(read_frame(&mut &junk[..]).is_err());
    }
}
