//! WSM message ids, the 4-byte message header and the RX batch format.
//!
//! A batch holds up to [`BATCH_MAX_MSGS`] messages back to back. Each starts with a 2-byte
//! little-endian length that includes the 4-byte header (length, then 2-byte id) and is
//! padded to 4 bytes; a zero length ends the batch. Bits 13-15 of the id carry a 3-bit
//! sequence number; there are two sequence spaces (vendor messages use the second).

/// `HI_STARTUP_IND`: firmware is up; the body starts with `numInpChBufs` (u16 LE).
/// Why handling one received message failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RxError {
    /// `wsm_release_tx_buffer` returned -1.
    Release,
    /// The sequence number was not the expected one.
    Sequence,
    /// The startup indication carried an impossible buffer count.
    Startup,
}

/// Startup indication: the firmware is up and says how many input buffers it has.
pub const WSM_STARTUP_IND_ID: u16 = 0x0801;
/// `WSM_RECEIVE_IND`: a received data frame. Body: 4-byte status, then the frame.
pub const WSM_RECEIVE_IND_ID: u16 = 0x0804;
/// `WSM_TRANSMIT_REQ` and its confirm.
/// A confirm's id is its request's id with this bit set.
pub const CONFIRM_BIT: u16 = 0x0400;
/// Transmit request: a data frame to send.
pub const WSM_TRANSMIT_REQ_ID: u16 = 0x0004;
/// Transmit confirm: frees the frame's input buffer.
pub const WSM_TRANSMIT_CNF_ID: u16 = 0x0404;
/// `WSM_READ_MIB_REQ` and its confirm (the periodic command of the model).
pub const WSM_READ_MIB_REQ_ID: u16 = 0x0005;
/// Read-MIB confirm: the answer to a command.
pub const WSM_READ_MIB_CNF_ID: u16 = 0x0405;
/// Multi-transmit confirm: body byte 0 is the count N, then N vif bytes. Releases N
/// buffers in all (one as a confirm, N-1 in its handler).
pub const WSM_MULTI_TRANSMIT_CNF_ID: u16 = 0x041E;

/// Bytes of header in front of every message.
pub const WSM_HDR_LEN: usize = 4;
/// Bytes of body a received message keeps for dispatch (status, vif, confirm entries).
pub const RX_BODY_KEPT: usize = 28;
/// Most messages in one RX batch.
pub const BATCH_MAX_MSGS: usize = 16;
/// Largest RX batch the host reads in one data-port transfer.
pub const BATCH_MAX_BYTES: usize = 32 * 1024;
/// Block size of the control byte's pending length.
pub const SDIO_BLOCK_BYTES: usize = 512;
/// Bits 0-6 of the control byte: pending length in blocks.
pub const CTRL_LEN_MASK: u8 = 0x7F;
/// Bit 7 of the control byte: toggles with every new batch.
pub const CTRL_TOGGLE: u8 = 0x80;
/// Body bytes of a transmit request in front of the frame: vif, then padding.
pub const TX_REQ_HDR_LEN: usize = 4;
/// Body bytes of a receive indication in front of the frame: the status word.
pub const RX_IND_HDR_LEN: usize = 4;

/// The message id without its sequence bits.
pub const fn msg_id(id: u16) -> u16 {
    id & 0x0FFF
}

/// The 3-bit sequence number of bits 13-15.
pub const fn seq_of(id: u16) -> u8 {
    (id >> 13) as u8 & 7
}

/// `id` with the sequence number `seq` in its sequence bits.
pub const fn with_seq(id: u16, seq: u8) -> u16 {
    (id & 0x1FFF) | ((seq as u16 & 7) << 13)
}

/// Which of the two sequence spaces a message id belongs to.
pub const fn seq_space(id: u16) -> usize {
    if id & 0x0F00 == 0x0C00 {
        1
    } else {
        0
    }
}

/// Confirms: `id & 0x0F00 == 0x0400`, or vendor confirms `0x0C00`.
pub const fn is_confirm(id: u16) -> bool {
    let class = id & 0x0F00;
    class == 0x0400 || class == 0x0C00
}

/// Rounds a message length up to the 4-byte padding.
pub const fn padded(len: usize) -> usize {
    (len + 3) & !3
}

/// One message of a batch as the driver keeps it (an skb of the model): the full id,
/// the message length, and the first [`RX_BODY_KEPT`] body bytes. A data frame's payload
/// is not carried: the network stack of the model only counts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RxMsg {
    /// Message id (with the sequence bits).
    pub id: u16,
    /// Length from the header, bytes.
    pub len: u16,
    /// The first bytes of the body (what the handlers read).
    pub body: [u8; RX_BODY_KEPT],
}

impl RxMsg {
    /// A free slot of a ring.
    pub const EMPTY: RxMsg = RxMsg { id: 0, len: 0, body: [0; RX_BODY_KEPT] };

    /// Frame bytes carried by a receive indication.
    pub fn frame_len(&self) -> u16 {
        (self.len as usize).saturating_sub(WSM_HDR_LEN + RX_IND_HDR_LEN) as u16
    }
}

/// Why a batch could not be parsed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadLength {
    /// The length the message claimed.
    pub len: u16,
    /// Where in the batch it started.
    pub offset: usize,
}

/// Calls `deliver` for every message of `batch`, in order; stops at a zero length, at
/// [`BATCH_MAX_MSGS`] messages or at the end of the buffer. Returns the count delivered.
pub fn for_each_msg(batch: &[u8], mut deliver: impl FnMut(RxMsg)) -> Result<usize, BadLength> {
    let mut offset = 0;
    let mut count = 0;
    while count < BATCH_MAX_MSGS && offset + 2 <= batch.len() {
        let len = u16::from_le_bytes([batch[offset], batch[offset + 1]]);
        if len == 0 {
            break;
        }
        let end = offset + len as usize;
        if (len as usize) < WSM_HDR_LEN || end > batch.len() {
            return Err(BadLength { len, offset });
        }
        let id = u16::from_le_bytes([batch[offset + 2], batch[offset + 3]]);
        let mut body = [0u8; RX_BODY_KEPT];
        let body_src = &batch[offset + WSM_HDR_LEN..end];
        let kept = body_src.len().min(RX_BODY_KEPT);
        body[..kept].copy_from_slice(&body_src[..kept]);
        deliver(RxMsg { id, len, body });
        count += 1;
        offset += padded(len as usize);
    }
    Ok(count)
}

/// Writes a message header and `body` at `offset`, pads with zeros up to `total_len`
/// bytes of message (the body is a prefix: the rest of the frame stays unwritten, as a
/// DMA buffer's contents would be) and returns the offset of the next message.
pub fn put_msg(buf: &mut [u8], offset: usize, id: u16, total_len: usize, body: &[u8]) -> usize {
    assert!(total_len >= WSM_HDR_LEN + body.len() && total_len <= u16::MAX as usize);
    buf[offset..offset + 2].copy_from_slice(&(total_len as u16).to_le_bytes());
    buf[offset + 2..offset + 4].copy_from_slice(&id.to_le_bytes());
    buf[offset + WSM_HDR_LEN..offset + WSM_HDR_LEN + body.len()].copy_from_slice(body);
    offset + padded(total_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extraction_follows_lengths_padding_and_terminator() {
        let mut buf = [0u8; 64];
        let next = put_msg(&mut buf, 0, with_seq(WSM_TRANSMIT_CNF_ID, 3), 9, &[1, 0, 0, 0, 7]);
        assert_eq!(next, 12, "9 bytes pad to 12");
        let next = put_msg(&mut buf, next, WSM_RECEIVE_IND_ID, 20, &[0; 4]);
        assert_eq!(next, 32);
        let mut got = [RxMsg::EMPTY; 4];
        let mut n = 0;
        let count = for_each_msg(&buf, |m| {
            got[n] = m;
            n += 1
        })
        .unwrap();
        assert_eq!(count, 2, "zero length at 32 ends the batch");
        assert_eq!(seq_of(got[0].id), 3);
        assert_eq!(msg_id(got[0].id), WSM_TRANSMIT_CNF_ID);
        assert_eq!(got[0].body[4], 7);
        assert_eq!(got[1].frame_len(), 12);
    }

    #[test]
    fn extraction_stops_at_sixteen_messages() {
        let mut buf = [0u8; 20 * 8];
        let mut off = 0;
        for _ in 0..20 {
            off = put_msg(&mut buf, off, WSM_TRANSMIT_CNF_ID, 8, &[0; 4]);
        }
        assert_eq!(for_each_msg(&buf, |_| {}), Ok(16));
    }

    #[test]
    fn extraction_rejects_short_and_overlong_lengths() {
        let mut buf = [0u8; 16];
        buf[0] = 3;
        assert_eq!(for_each_msg(&buf, |_| {}), Err(BadLength { len: 3, offset: 0 }));
        buf[0] = 40;
        assert_eq!(for_each_msg(&buf, |_| {}), Err(BadLength { len: 40, offset: 0 }));
    }

    #[test]
    fn confirm_classes_and_sequence_spaces() {
        assert!(is_confirm(WSM_TRANSMIT_CNF_ID));
        assert!(is_confirm(WSM_MULTI_TRANSMIT_CNF_ID));
        assert!(is_confirm(0x0C02), "vendor confirm");
        assert!(!is_confirm(WSM_RECEIVE_IND_ID));
        assert!(!is_confirm(WSM_STARTUP_IND_ID));
        assert_eq!(seq_space(0x0C02), 1);
        assert_eq!(seq_space(WSM_TRANSMIT_CNF_ID), 0);
        assert_eq!(seq_of(with_seq(0x0404, 7)), 7);
        assert_eq!(msg_id(with_seq(0x0404, 7)), 0x0404);
    }
}
