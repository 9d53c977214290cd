//! Bounded reading of DICOM bytes (issue #14): every declared length is
//! checked against the bytes actually there before dicom-rs allocates for
//! it, what dicom-rs will hold is charged against a budget of
//! [`PARSE_MEMORY_FACTOR`] × the data set, sequences nest to a fixed depth,
//! and a deflated data set inflates to a fixed multiple of its size.
//!
//! dicom-rs 0.10 sizes a value's buffer from the element's length field
//! (`try_reserve_exact(len)` then `resize(len, 0)` in
//! `dicom_parser::stateful::decode`, `read_str_body` in
//! `dicom_object::meta`) before it reads the value, and has no option to
//! cap it: a 9.7 KB file whose Patient Name says 0xFFFFFFF0 bytes made it
//! zero 4 GiB. Its readers take any [`StatefulDecode`], so [`Bounded`]
//! wraps dicom-rs' own decoder: the element and item headers are decoded
//! by dicom-rs exactly as before, and each defined length is compared with
//! the bytes left before the header is handed on. The File Meta
//! Information is read by `FileMetaTable::from_reader` with a decoder of
//! its own; [`check_file_meta`] walks it first the way that reader does
//! (PS3.10 §7.1: explicit VR little endian, as many bytes as File Meta
//! Information Group Length (0002,0000) says).
//!
//! A length that fits can still cost many times its bytes once parsed (an
//! element header of 8 bytes becomes a 112-byte element in a map node; a
//! value of backslashes becomes one string per byte), so the wrapper also
//! charges each element, item and value what dicom-rs and the index will
//! hold for it, from the value's bytes, before they are read. A refusal is
//! left in a [`RefusalCell`] for the caller, and dicom-rs gets an error
//! that stops it.

use std::cell::Cell;
use std::io::{Cursor, Read};
use std::rc::Rc;

use dicom_core::header::{DataElementHeader, HasLength, Header, Length, SequenceItemHeader};
use dicom_core::{PrimitiveValue, Tag, VR};
use dicom_encoding::decode::Decode;
use dicom_encoding::decode::explicit_le::ExplicitVRLittleEndianDecoder;
use dicom_parser::stateful::decode::{
    CharacterSetOverride, DynStatefulDecoder, Error as DecodeError, StatefulDecode,
};

/// The deepest nesting of sequences accepted (a sequence and its item count
/// as one level). Real objects nest a handful of levels (SR content trees
/// and RT structures go deepest); each level costs stack in dicom-rs'
/// recursive object builder, so a data set of nothing but nested sequences
/// would otherwise overflow the thread's stack.
pub const MAX_SEQUENCE_DEPTH: usize = 64;

/// The most a deflated data set (1.2.840.10008.1.2.1.99, PS3.5 §A.5) may
/// inflate to, as a multiple of its deflated size. The catalogue's deflated
/// image inflates 61×; DEFLATE itself allows at most 1032×.
pub const MAX_INFLATE_RATIO: usize = 256;

/// The memory a data set may take once parsed and indexed, as a multiple
/// of its encoded size (the inflated size, for the deflated transfer
/// syntax), on top of [`PARSE_MEMORY_ALLOWANCE`]. What dicom-rs will hold
/// is charged while it reads, before each allocation: [`ELEMENT_COST`] per
/// element, [`ITEM_COST`] per item or fragment, twice each value's bytes
/// (the read buffer and the value), [`STRING_VALUE_COST`] per text value
/// (text splits at every backslash), and [`INDEX_VALUE_COST`] per value of
/// a QIDO-RS attribute, which the index turns into DICOM JSON. The charges
/// are measured costs rounded up (`tests/bounded.rs` checks the peak
/// of data sets built to be as costly as possible); the catalogue's files
/// are charged at most 40 × their size.
pub const PARSE_MEMORY_FACTOR: u64 = 64;

/// The fixed part of the parse memory budget: 1 MiB.
pub const PARSE_MEMORY_ALLOWANCE: u64 = 1 << 20;

/// Charge per data element: an `InMemElement` (112 bytes) and its key in a
/// `BTreeMap` whose nodes, filled in tag order, are about half full.
pub const ELEMENT_COST: u64 = 256;

/// Charge per sequence item or pixel data fragment: an item's first
/// element allocates a whole `BTreeMap` leaf (11 slots, about 1.3 KB).
pub const ITEM_COST: u64 = 1536;

/// Charge per text value: a `String` (24 bytes) in a `SmallVec` that grows
/// by doubling (measured: 73 bytes per empty value).
pub const STRING_VALUE_COST: u64 = 80;

/// Charge per value of a top-level QIDO-RS attribute ([`crate::search_keys::QIDO_TAGS`]):
/// its DICOM JSON value in a growing array, and the copies made on the way
/// (measured: 80 bytes per value).
pub const INDEX_VALUE_COST: u64 = 96;

/// How many values dicom-rs makes of `value` in `vr`: one string per
/// backslash-separated value (PS3.5 §6.4; LT, ST, UT and UR are single
/// valued), one number per binary number (PS3.5 Table 6.2-1), one byte
/// string for the other binary VRs.
fn value_count(vr: VR, value: &[u8]) -> u64 {
    let width = match vr {
        VR::US | VR::SS => 2,
        VR::UL | VR::SL | VR::FL | VR::AT => 4,
        VR::FD | VR::UV | VR::SV => 8,
        VR::LT | VR::ST | VR::UT | VR::UR => return 1,
        vr if splits_on_backslash(vr) => {
            return 1 + value.iter().filter(|&&b| b == b'\\').count() as u64;
        }
        _ => return 1,
    };
    (value.len() as u64 / width).max(1)
}

/// The most memory parsing a data set of `len` bytes may take.
pub(crate) fn memory_budget(len: usize) -> u64 {
    (len as u64)
        .saturating_mul(PARSE_MEMORY_FACTOR)
        .saturating_add(PARSE_MEMORY_ALLOWANCE)
}

/// Text value representations that may hold several values, split at
/// backslashes (PS3.5 §6.4).
fn splits_on_backslash(vr: VR) -> bool {
    matches!(
        vr,
        VR::AE
            | VR::AS
            | VR::CS
            | VR::DA
            | VR::DS
            | VR::DT
            | VR::IS
            | VR::LO
            | VR::PN
            | VR::SH
            | VR::TM
            | VR::UC
            | VR::UI
    )
}

/// Why bounded reading stopped. Tags are public dictionary numbers, never
/// values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// A header declares more value bytes than remain.
    DeclaredLength {
        /// The element, or (FFFE,E000) for an item.
        tag: Tag,
        /// The declared length, bytes.
        declared: u32,
        /// Bytes left after the header.
        available: u64,
    },
    /// Sequences nest deeper than [`MAX_SEQUENCE_DEPTH`].
    TooDeep,
    /// What has been read would take more memory than [`memory_budget`].
    OverBudget {
        /// The budget, bytes.
        budget: u64,
    },
    /// A deflated data set inflates past its limit.
    Inflated {
        /// The limit, bytes.
        limit: u64,
    },
}

/// Where a refusal is left for the caller: the decoder itself is moved
/// into dicom-rs' reader, and its error type cannot carry ours.
pub(crate) type RefusalCell = Rc<Cell<Option<Refusal>>>;

/// Checks the File Meta Information that starts at `bytes[0]` ("DICM")
/// as `dicom_object::FileMetaTable::from_reader` will read it, and returns
/// where the data set starts. Damage other than an oversized length is
/// left for dicom-rs to report (it allocates nothing before failing there).
pub(crate) fn check_file_meta(bytes: &[u8]) -> Result<usize, Refusal> {
    let decoder = ExplicitVRLittleEndianDecoder::default();
    let mut cursor = Cursor::new(bytes);
    cursor.set_position(4);
    let Ok((header, _)) = decoder.decode_header(&mut cursor) else {
        return Ok(bytes.len());
    };
    if header.tag() != Tag(0x0002, 0x0000) || header.length() != Length(4) {
        return Ok(bytes.len());
    }
    let mut word = [0u8; 4];
    if cursor.read_exact(&mut word).is_err() {
        return Ok(bytes.len());
    }
    let group_length = u32::from_le_bytes(word);
    let mut read: u32 = 0;
    while read < group_length {
        let Ok((header, header_len)) = decoder.decode_header(&mut cursor) else {
            return Ok(bytes.len());
        };
        let Some(len) = header.length().get() else {
            return Ok(bytes.len());
        };
        let available = remaining(bytes.len(), cursor.position());
        if u64::from(len) > available {
            return Err(Refusal::DeclaredLength {
                tag: header.tag(),
                declared: len,
                available,
            });
        }
        cursor.set_position(cursor.position() + u64::from(len));
        read = read
            .saturating_add(u32::try_from(header_len).unwrap_or(u32::MAX))
            .saturating_add(len);
    }
    Ok(usize::try_from(cursor.position()).unwrap_or(bytes.len()))
}

fn remaining(total: usize, position: u64) -> u64 {
    (total as u64).saturating_sub(position)
}

/// Why a deflated data set could not be inflated.
#[derive(Debug)]
pub(crate) enum InflateError {
    /// It inflates past [`MAX_INFLATE_RATIO`] times its size.
    TooLarge(Refusal),
    /// It is not a valid DEFLATE stream (RFC 1951).
    Stream(std::io::Error),
}

/// Inflates a deflated data set (PS3.5 §A.5) through the transfer
/// syntax's own adapter, refusing more than [`MAX_INFLATE_RATIO`] times
/// its size.
pub(crate) fn inflate(
    deflated: &[u8],
    adapter: &dyn dicom_encoding::transfer_syntax::DataRWAdapter,
) -> Result<Vec<u8>, InflateError> {
    let limit = (deflated.len() as u64).saturating_mul(MAX_INFLATE_RATIO as u64);
    let cap = usize::try_from(limit.saturating_add(1)).unwrap_or(usize::MAX);
    let mut reader = adapter.adapt_reader(Box::new(deflated));
    // Grown by hand, never past the limit: `read_to_end` would double the
    // buffer to twice the limit.
    let mut out: Vec<u8> = Vec::new();
    let mut chunk = [0u8; 1 << 16];
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(InflateError::Stream(e)),
        };
        if out.len() + n > cap {
            return Err(InflateError::TooLarge(Refusal::Inflated { limit }));
        }
        if out.capacity() - out.len() < n {
            let grown = (out.capacity() * 2).max(out.len() + n).min(cap);
            out.reserve_exact(grown - out.len());
        }
        out.extend_from_slice(&chunk[..n]);
    }
    if out.len() as u64 > limit {
        return Err(InflateError::TooLarge(Refusal::Inflated { limit }));
    }
    Ok(out)
}

/// An open sequence or item, as dicom-rs' `DataSetReader` tracks it: where
/// it ends when its length is defined.
#[derive(Debug, Clone, Copy)]
struct Open {
    end: Option<u64>,
    /// Encapsulated pixel data: its items are fragments, not levels.
    pixel_data: bool,
}

/// dicom-rs' stateful decoder with every defined length checked against
/// the bytes left, the nesting depth counted, and the memory that what it
/// reads will take charged against a budget.
pub(crate) struct Bounded<'a> {
    inner: DynStatefulDecoder<&'a [u8]>,
    /// The bytes the inner decoder reads, from its position 0.
    bytes: &'a [u8],
    open: Vec<Open>,
    /// Memory charged so far and the most allowed, bytes.
    charged: u64,
    budget: u64,
    refusal: RefusalCell,
}

impl<'a> Bounded<'a> {
    /// A decoder for the data set `bytes` in transfer syntax `ts` (for the
    /// deflated syntax, `bytes` are the inflated data set).
    pub(crate) fn new(
        bytes: &'a [u8],
        ts: &dicom_encoding::TransferSyntax,
        refusal: RefusalCell,
    ) -> Result<Self, DecodeError> {
        let inner = DynStatefulDecoder::new_with_override(
            bytes,
            ts,
            Default::default(),
            CharacterSetOverride::default(),
            0,
        )?;
        Ok(Self {
            inner,
            bytes,
            open: Vec::new(),
            charged: 0,
            budget: memory_budget(bytes.len()),
            refusal,
        })
    }

    fn refuse(&self, refusal: Refusal, len: u32) -> DecodeError {
        self.refusal.set(Some(refusal));
        DecodeError::AllocateValueData { len }
    }

    /// Refuses a defined `len` longer than the bytes left.
    fn check(&self, tag: Tag, len: Length) -> Result<(), DecodeError> {
        let Some(declared) = len.get() else {
            return Ok(());
        };
        let available = remaining(self.bytes.len(), self.inner.position());
        if u64::from(declared) > available {
            return Err(self.refuse(
                Refusal::DeclaredLength {
                    tag,
                    declared,
                    available,
                },
                declared,
            ));
        }
        Ok(())
    }

    /// Charges `cost` bytes against the budget.
    fn charge(&mut self, cost: u64) -> Result<(), DecodeError> {
        self.charged = self.charged.saturating_add(cost);
        if self.charged > self.budget {
            let budget = self.budget;
            return Err(self.refuse(Refusal::OverBudget { budget }, 0));
        }
        Ok(())
    }

    /// Checks a value's length and charges what reading it will take; the
    /// value's bytes are at the decoder's position.
    fn check_value(&mut self, header: &DataElementHeader) -> Result<(), DecodeError> {
        self.check(header.tag, header.len)?;
        let len = header.len.get().unwrap_or(0);
        let at = usize::try_from(self.inner.position()).unwrap_or(usize::MAX);
        let value = self
            .bytes
            .get(at..)
            .and_then(|rest| rest.get(..len as usize))
            .unwrap_or_default();
        let values = value_count(header.vr, value);
        let mut cost = 2 * u64::from(len);
        if splits_on_backslash(header.vr) || matches!(header.vr, VR::LT | VR::ST | VR::UT | VR::UR)
        {
            cost += STRING_VALUE_COST * values;
        }
        if self.open.is_empty() && crate::search_keys::QIDO_TAGS.contains(&header.tag) {
            cost += INDEX_VALUE_COST * values;
        }
        self.charge(cost)
    }

    /// Closes the defined-length sequences and items the position has
    /// passed, as `DataSetReader::update_seq_delimiters` does.
    fn close_passed(&mut self) {
        let position = self.inner.position();
        while self
            .open
            .last()
            .is_some_and(|o| o.end.is_some_and(|end| position >= end))
        {
            self.open.pop();
        }
    }

    /// Whether everything from the position on is NUL bytes: padding some
    /// writers append after the data set (to an even length or a block
    /// size). A top-level element never starts with a zero tag, group 0000
    /// being the command group of PS3.7, never in a data set; the bytes
    /// stay in the stored instance as sent.
    fn only_padding_left(&self) -> bool {
        let at = usize::try_from(self.inner.position()).unwrap_or(usize::MAX);
        self.bytes
            .get(at..)
            .is_some_and(|rest| !rest.is_empty() && rest.iter().all(|&b| b == 0))
    }

    fn push(&mut self, len: Length, pixel_data: bool) -> Result<(), DecodeError> {
        let end = len.get().map(|l| self.inner.position() + u64::from(l));
        self.open.push(Open { end, pixel_data });
        // A level is a sequence and its item.
        if self.open.len() > 2 * MAX_SEQUENCE_DEPTH + 1 {
            return Err(self.refuse(Refusal::TooDeep, 0));
        }
        Ok(())
    }
}

impl<'a> StatefulDecode for Bounded<'a> {
    type Reader = &'a [u8];

    fn decode_header(&mut self) -> Result<DataElementHeader, DecodeError> {
        self.close_passed();
        if self.open.is_empty() && self.only_padding_left() {
            // Trailing padding after the last element (issue #15 item 9):
            // end the data set as dicom-rs does at the end of its input.
            return Err(DecodeError::DecodeElementHeader {
                position: self.inner.position(),
                source: dicom_encoding::decode::Error::ReadHeaderTag {
                    backtrace: None,
                    source: std::io::ErrorKind::UnexpectedEof.into(),
                },
            });
        }
        let header = self.inner.decode_header()?;
        if header.tag == Tag(0xFFFE, 0xE00D) {
            // An item delimiter where an element was expected closes the item.
            self.open.pop();
            return Ok(header);
        }
        self.check(header.tag, header.len)?;
        self.charge(ELEMENT_COST)?;
        if header.vr == VR::SQ || header.len.is_undefined() {
            self.push(header.len, header.is_encapsulated_pixeldata())?;
        }
        Ok(header)
    }

    fn decode_item_header(&mut self) -> Result<SequenceItemHeader, DecodeError> {
        self.close_passed();
        let header = self.inner.decode_item_header()?;
        match header {
            SequenceItemHeader::Item { len } => {
                self.check(Tag(0xFFFE, 0xE000), len)?;
                self.charge(ITEM_COST)?;
                // A fragment of encapsulated pixel data is read whole, no level.
                if !self.open.last().is_some_and(|o| o.pixel_data) {
                    self.push(len, false)?;
                }
            }
            SequenceItemHeader::ItemDelimiter | SequenceItemHeader::SequenceDelimiter => {
                self.open.pop();
            }
        }
        Ok(header)
    }

    fn read_value(&mut self, header: &DataElementHeader) -> Result<PrimitiveValue, DecodeError> {
        self.check_value(header)?;
        self.inner.read_value(header)
    }

    fn read_value_preserved(
        &mut self,
        header: &DataElementHeader,
    ) -> Result<PrimitiveValue, DecodeError> {
        self.check_value(header)?;
        self.inner.read_value_preserved(header)
    }

    fn read_value_bytes(
        &mut self,
        header: &DataElementHeader,
    ) -> Result<PrimitiveValue, DecodeError> {
        self.check_value(header)?;
        self.inner.read_value_bytes(header)
    }

    fn read_to_vec(&mut self, length: u32, vec: &mut Vec<u8>) -> Result<(), DecodeError> {
        self.check(Tag(0xFFFE, 0xE000), Length(length))?;
        self.charge(u64::from(length))?;
        self.inner.read_to_vec(length, vec)
    }

    fn read_u32_to_vec(&mut self, length: u32, vec: &mut Vec<u32>) -> Result<(), DecodeError> {
        self.check(Tag(0xFFFE, 0xE000), Length(length))?;
        self.charge(u64::from(length))?;
        self.inner.read_u32_to_vec(length, vec)
    }

    fn read_to<W>(&mut self, length: u32, out: W) -> Result<(), DecodeError>
    where
        Self: Sized,
        W: std::io::Write,
    {
        self.check(Tag(0xFFFE, 0xE000), Length(length))?;
        self.inner.read_to(length, out)
    }

    fn skip_bytes(&mut self, length: u32) -> Result<(), DecodeError> {
        self.inner.skip_bytes(length)
    }

    fn seek(&mut self, position: u64) -> Result<(), DecodeError>
    where
        Self::Reader: std::io::Seek,
    {
        self.inner.seek(position)
    }

    fn position(&self) -> u64 {
        self.inner.position()
    }
}
