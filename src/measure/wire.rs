//! Reading records for measurement: the fields a report needs, borrowed from the frame's
//! payload, without allocating.
//!
//! The log's records are MessagePack maps with named fields (see
//! [`crate::exposure::record`]). [`Record::decode`](crate::exposure::Record::decode) builds
//! an owned [`Record`](crate::exposure::Record) through serde: about 1 µs a record, one
//! allocation per string, which alone would hold a two-pass report under 0.5M records/s.
//! This reader walks the same map once, matches the keys it needs, borrows strings and
//! byte strings from the payload, and skips every other field whatever its type, so new
//! optional fields never break it (the schema's promise). Strings stay bytes: ids are
//! compared and hashed as bytes, and the few that are shown (a new campaign's id, a
//! placement) go through [`text`], so no record pays for UTF-8 checks it never needs. Arrays (`ids`, `items`) are kept
//! as raw slices and decoded only by the code that iterates them. A record of a kind this
//! build does not know is returned as [`Kind::Invalid`] with [`View::unknown_kind`] set,
//! and a report skips it rather than fail on a newer log.
//!
//! Numbers may use any MessagePack integer width; money is micros, times milliseconds.

use crate::campaign::Channel;
use crate::exposure::record::{ConversionType, Kind};
use crate::identity::{IdHash, IdKind};

/// Why a payload could not be read as a record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub &'static str);

type Result<T> = std::result::Result<T, WireError>;

/// The fields of one record that measurement reads. Absent fields are `None` / empty.
#[derive(Debug, Default, Clone)]
pub struct View<'a> {
    pub kind: Kind,
    /// The kind was a string this build does not know.
    pub unknown_kind: bool,
    pub ts: i64,
    pub decision_id: Option<u128>,
    pub slot: Option<u8>,
    pub campaign: Option<&'a [u8]>,
    pub advertiser: Option<&'a [u8]>,
    pub placement: Option<&'a [u8]>,
    pub channel: Option<Channel>,
    pub profile: Option<u128>,
    pub ids: Raw<'a>,
    pub transaction_id: Option<&'a [u8]>,
    pub cost: Option<i64>,
    pub price: Option<i64>,
    pub order_id: Option<&'a [u8]>,
    pub conversion_type: Option<ConversionType>,
    pub occurred: Option<i64>,
    pub total: Option<i64>,
    pub currency: Option<&'a [u8]>,
    pub items: Raw<'a>,
    pub sku: Option<&'a [u8]>,
    pub quantity: Option<u32>,
    pub action: Option<&'a [u8]>,
    pub document: Option<&'a [u8]>,
    pub version: Option<u64>,
}

/// An array field as it sits in the payload: its element count and encoded elements.
#[derive(Debug, Default, Clone, Copy)]
pub struct Raw<'a> {
    pub len: usize,
    bytes: &'a [u8],
}

impl<'a> Raw<'a> {
    /// An array of `len` elements encoded in `bytes` (as [`Raw::bytes`] gave them).
    pub fn new(len: usize, bytes: &'a [u8]) -> Raw<'a> {
        Raw { len, bytes }
    }

    /// The encoded elements.
    pub fn bytes(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The hashed identifiers of an `ids` array, in order.
    pub fn ids(&self) -> impl Iterator<Item = Result<IdHash>> + 'a {
        let mut c = Cursor::new(self.bytes);
        (0..self.len).map(move |_| read_id(&mut c))
    }

    /// The basket lines of an `items` array, in order.
    pub fn items(&self) -> impl Iterator<Item = Result<Item<'a>>> + 'a {
        let mut c = Cursor::new(self.bytes);
        (0..self.len).map(move |_| read_item(&mut c))
    }
}

/// One basket line of a conversion.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Item<'a> {
    pub sku: Option<&'a [u8]>,
    pub category: Option<&'a [u8]>,
    pub brand: Option<&'a [u8]>,
    /// Unit price in micros.
    pub price: i64,
    pub quantity: u32,
}

/// Which fields of a record to read, decided from its kind: a set of [`Fields::SCALARS`]
/// (every field but the two arrays), [`Fields::IDS`] (`ids`, and `ts` and `profile`) and
/// [`Fields::ITEMS`]. The kind and `ts` are always read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields(u8);

impl Fields {
    pub const NONE: Fields = Fields(0);
    pub const SCALARS: Fields = Fields(1);
    pub const IDS: Fields = Fields(2);
    pub const ITEMS: Fields = Fields(4);
    pub const ALL: Fields = Fields(7);

    pub const fn and(self, other: Fields) -> Fields {
        Fields(self.0 | other.0)
    }

    const fn has(self, f: Fields) -> bool {
        self.0 & f.0 != 0
    }
}

/// Reads every field of the record in `payload`.
pub fn read(payload: &[u8]) -> Result<View<'_>> {
    read_some(payload, &|_| Fields::ALL)
}

/// Reads the fields `select` asks for, given the record's kind: the first pass of a
/// report skips most records after their kind and reads only the identifiers of the
/// decision side; the second skips the arrays it does not use. Skipped fields are
/// stepped over without being decoded.
pub fn read_some<'a>(payload: &'a [u8], select: &dyn Fn(Kind) -> Fields) -> Result<View<'a>> {
    let mut c = Cursor::new(payload);
    let fields = c.map_len()?;
    let mut v = View::default();
    let mut want = Fields::ALL;
    for _ in 0..fields {
        let key = c.str_bytes()?;
        match key {
            b"kind" => {
                let s = c.str_bytes()?;
                match kind_of(s) {
                    Some(k) => v.kind = k,
                    None => {
                        v.kind = Kind::Invalid;
                        v.unknown_kind = true;
                        return Ok(v);
                    }
                }
                want = select(v.kind);
                if want == Fields::NONE {
                    return Ok(v);
                }
            }
            b"ts" => v.ts = c.int()?,
            b"profile" if want.has(Fields::SCALARS.and(Fields::IDS)) => {
                v.profile = c.opt(Cursor::h128)?
            }
            b"ids" if want.has(Fields::IDS) => v.ids = c.raw_array()?,
            b"items" if want.has(Fields::ITEMS) => v.items = c.raw_array()?,
            _ if !want.has(Fields::SCALARS) => c.skip()?,
            b"decision_id" => v.decision_id = c.opt(Cursor::h128)?,
            b"slot" => v.slot = c.opt(Cursor::int)?.map(narrow).transpose()?,
            b"campaign" => v.campaign = c.opt(Cursor::str_bytes)?,
            b"advertiser" => v.advertiser = c.opt(Cursor::str_bytes)?,
            b"placement" => v.placement = c.opt(Cursor::str_bytes)?,
            b"channel" => v.channel = c.opt(Cursor::str_bytes)?.and_then(channel_of),
            b"transaction_id" => v.transaction_id = c.opt(Cursor::str_bytes)?,
            b"cost" => v.cost = c.opt(Cursor::int)?,
            b"price" => v.price = c.opt(Cursor::int)?,
            b"order_id" => v.order_id = c.opt(Cursor::str_bytes)?,
            b"conversion_type" => {
                v.conversion_type = match c.opt(Cursor::str_bytes)? {
                    Some(b"purchase") => Some(ConversionType::Purchase),
                    Some(b"refund") => Some(ConversionType::Refund),
                    _ => None,
                }
            }
            b"occurred" => v.occurred = c.opt(Cursor::int)?,
            b"total" => v.total = c.opt(Cursor::int)?,
            b"currency" => v.currency = c.opt(Cursor::str_bytes)?,
            b"sku" => v.sku = c.opt(Cursor::str_bytes)?,
            b"quantity" => v.quantity = c.opt(Cursor::int)?.map(narrow).transpose()?,
            b"action" => v.action = c.opt(Cursor::str_bytes)?,
            b"document" => v.document = c.opt(Cursor::str_bytes)?,
            b"version" => v.version = c.opt(Cursor::int)?.map(narrow).transpose()?,
            _ => c.skip()?,
        }
    }
    Ok(v)
}

/// Whether `payload` may hold the bytes of `key` as a MessagePack map key (a short
/// string): `false` means it certainly does not. A first pass uses it to pass over the
/// many decision records that carry no identifiers without walking their fields; a
/// `true` is then confirmed by reading. Looks for the key's marker byte a word at a time.
pub fn may_have_key(payload: &[u8], key: &[u8]) -> bool {
    let Some((&marker, rest)) = key.split_first() else {
        return true;
    };
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let spread = ONES.wrapping_mul(u64::from(marker));
    let check = |i: usize| payload[i + 1..].starts_with(rest);
    let mut chunks = payload.chunks_exact(8);
    let mut at = 0;
    for chunk in chunks.by_ref() {
        let w = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8])) ^ spread;
        // A zero byte in `w` is a byte equal to the marker.
        if w.wrapping_sub(ONES) & !w & HIGHS != 0
            && (at..at + 8).any(|i| payload[i] == marker && check(i))
        {
            return true;
        }
        at += 8;
    }
    (at..payload.len()).any(|i| payload[i] == marker && check(i))
}

/// Bytes of a string field as text (invalid UTF-8 replaced), for what is shown.
pub fn text(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

/// Bytes of a string field as `&str`, `None` if not UTF-8: for item facts that must be
/// compared as text (a brand ignoring case).
pub fn as_str(b: Option<&[u8]>) -> Option<&str> {
    b.and_then(|b| std::str::from_utf8(b).ok())
}

fn channel_of(s: &[u8]) -> Option<Channel> {
    match s {
        b"online" => Some(Channel::Online),
        b"in_store" => Some(Channel::InStore),
        b"app" => Some(Channel::App),
        _ => None,
    }
}

fn narrow<T: TryFrom<i64>>(n: i64) -> Result<T> {
    T::try_from(n).map_err(|_| WireError("integer out of range"))
}

fn kind_of(s: &[u8]) -> Option<Kind> {
    Some(match s {
        b"decision" => Kind::Decision,
        b"nofill" => Kind::Nofill,
        b"control" => Kind::Control,
        b"impression" => Kind::Impression,
        b"click" => Kind::Click,
        b"conversion" => Kind::Conversion,
        b"purchase" => Kind::Purchase,
        b"campaign" => Kind::Campaign,
        b"erasure" => Kind::Erasure,
        b"invalid" => Kind::Invalid,
        _ => return None,
    })
}

fn id_kind_of(s: &[u8]) -> Option<IdKind> {
    Some(match s {
        b"email_sha256" => IdKind::EmailSha256,
        b"phone_sha256" => IdKind::PhoneSha256,
        b"device_id" => IdKind::DeviceId,
        b"loyalty_id" => IdKind::LoyaltyId,
        b"payment_token" => IdKind::PaymentToken,
        b"customer_id" => IdKind::CustomerId,
        _ => return None,
    })
}

fn read_id(c: &mut Cursor) -> Result<IdHash> {
    let mut kind = None;
    let mut hash = None;
    for _ in 0..c.map_len()? {
        match c.str_bytes()? {
            b"kind" => kind = id_kind_of(c.str_bytes()?),
            b"hash" => hash = Some(c.h128()?),
            _ => c.skip()?,
        }
    }
    match (kind, hash) {
        (Some(kind), Some(hash)) => Ok(IdHash { kind, hash }),
        _ => Err(WireError("an identifier without a known kind and a hash")),
    }
}

fn read_item<'a>(c: &mut Cursor<'a>) -> Result<Item<'a>> {
    let mut item = Item::default();
    for _ in 0..c.map_len()? {
        match c.str_bytes()? {
            b"sku" => item.sku = c.opt(Cursor::str_bytes)?,
            b"category" => item.category = c.opt(Cursor::str_bytes)?,
            b"brand" => item.brand = c.opt(Cursor::str_bytes)?,
            b"price" => item.price = c.int()?,
            b"quantity" => item.quantity = narrow(c.int()?)?,
            _ => c.skip()?,
        }
    }
    Ok(item)
}

/// A position in a MessagePack buffer.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

const NIL: u8 = 0xc0;

impl<'a> Cursor<'a> {
    fn new(buf: &'a [u8]) -> Cursor<'a> {
        Cursor { buf, pos: 0 }
    }

    fn byte(&mut self) -> Result<u8> {
        let b = *self.buf.get(self.pos).ok_or(WireError("truncated"))?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(WireError("truncated"))?;
        let s = self.buf.get(self.pos..end).ok_or(WireError("truncated"))?;
        self.pos = end;
        Ok(s)
    }

    fn be(&mut self, n: usize) -> Result<u64> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0u64, |a, &b| a << 8 | u64::from(b)))
    }

    /// `None` for a nil, else what `read` reads.
    fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Result<T>) -> Result<Option<T>> {
        if self.buf.get(self.pos) == Some(&NIL) {
            self.pos += 1;
            return Ok(None);
        }
        read(self).map(Some)
    }

    fn map_len(&mut self) -> Result<usize> {
        match self.byte()? {
            b @ 0x80..=0x8f => Ok(usize::from(b & 0x0f)),
            0xde => Ok(self.be(2)? as usize),
            0xdf => Ok(self.be(4)? as usize),
            _ => Err(WireError("expected a map")),
        }
    }

    fn array_len(&mut self) -> Result<usize> {
        match self.byte()? {
            b @ 0x90..=0x9f => Ok(usize::from(b & 0x0f)),
            0xdc => Ok(self.be(2)? as usize),
            0xdd => Ok(self.be(4)? as usize),
            _ => Err(WireError("expected an array")),
        }
    }

    fn str_bytes(&mut self) -> Result<&'a [u8]> {
        let n = match self.byte()? {
            b @ 0xa0..=0xbf => usize::from(b & 0x1f),
            0xd9 => self.be(1)? as usize,
            0xda => self.be(2)? as usize,
            0xdb => self.be(4)? as usize,
            _ => return Err(WireError("expected a string")),
        };
        self.take(n)
    }

    /// A 128-bit value: 16 bytes (`bin`), big-endian.
    fn h128(&mut self) -> Result<u128> {
        let n = match self.byte()? {
            0xc4 => self.be(1)? as usize,
            0xc5 => self.be(2)? as usize,
            0xc6 => self.be(4)? as usize,
            _ => return Err(WireError("expected 16 bytes")),
        };
        let bytes: [u8; 16] =
            (self.take(n)?.try_into()).map_err(|_| WireError("expected 16 bytes"))?;
        Ok(u128::from_be_bytes(bytes))
    }

    fn int(&mut self) -> Result<i64> {
        let b = self.byte()?;
        Ok(match b {
            0x00..=0x7f => i64::from(b),
            0xe0..=0xff => i64::from(b as i8),
            0xcc => self.be(1)? as i64,
            0xcd => self.be(2)? as i64,
            0xce => self.be(4)? as i64,
            0xcf => i64::try_from(self.be(8)?).map_err(|_| WireError("integer out of range"))?,
            0xd0 => i64::from(self.be(1)? as u8 as i8),
            0xd1 => i64::from(self.be(2)? as u16 as i16),
            0xd2 => i64::from(self.be(4)? as u32 as i32),
            0xd3 => self.be(8)? as i64,
            _ => return Err(WireError("expected an integer")),
        })
    }

    /// An array left encoded: its length and bytes. Nil is an empty array.
    fn raw_array(&mut self) -> Result<Raw<'a>> {
        if self.buf.get(self.pos) == Some(&NIL) {
            self.pos += 1;
            return Ok(Raw::default());
        }
        let len = self.array_len()?;
        let start = self.pos;
        for _ in 0..len {
            self.skip()?;
        }
        Ok(Raw {
            len,
            bytes: &self.buf[start..self.pos],
        })
    }

    /// Skips one value of any type, nested ones included.
    #[inline]
    fn skip(&mut self) -> Result<()> {
        // The common cases, a short string or a small number, without the general loop.
        match self.buf.get(self.pos) {
            Some(&b @ 0xa0..=0xbf) => {
                self.pos += 1;
                self.take(usize::from(b & 0x1f)).map(drop)
            }
            Some(0x00..=0x7f | 0xe0..=0xff | &NIL | 0xc2 | 0xc3) => {
                self.pos += 1;
                Ok(())
            }
            _ => self.skip_any(),
        }
    }

    fn skip_any(&mut self) -> Result<()> {
        // Values still to skip: a map or an array adds its elements, so nesting costs no
        // recursion (a hostile payload cannot overflow the stack).
        let mut pending: u64 = 1;
        while pending > 0 {
            pending -= 1;
            let b = self.byte()?;
            let skip = match b {
                0x00..=0x7f | 0xe0..=0xff | NIL | 0xc2 | 0xc3 => 0,
                0x80..=0x8f => {
                    pending += 2 * u64::from(b & 0x0f);
                    0
                }
                0x90..=0x9f => {
                    pending += u64::from(b & 0x0f);
                    0
                }
                0xa0..=0xbf => usize::from(b & 0x1f),
                0xc4 | 0xd9 => self.be(1)? as usize,
                0xc5 | 0xda => self.be(2)? as usize,
                0xc6 | 0xdb => self.be(4)? as usize,
                0xc7 => self.be(1)? as usize + 1,
                0xc8 => self.be(2)? as usize + 1,
                0xc9 => self.be(4)? as usize + 1,
                0xca => 4,
                0xcb => 8,
                0xcc | 0xd0 => 1,
                0xcd | 0xd1 => 2,
                0xce | 0xd2 => 4,
                0xcf | 0xd3 => 8,
                0xd4 => 2,
                0xd5 => 3,
                0xd6 => 5,
                0xd7 => 9,
                0xd8 => 17,
                0xdc => {
                    pending += self.be(2)?;
                    0
                }
                0xdd => {
                    pending += self.be(4)?;
                    0
                }
                0xde => {
                    pending += 2 * self.be(2)?;
                    0
                }
                0xdf => {
                    pending += 2 * self.be(4)?;
                    0
                }
                0xc1 => return Err(WireError("reserved MessagePack marker")),
            };
            self.take(skip)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::BidModel;
    use crate::exposure::record::{H128, LoggedId, LoggedItem, Record};

    fn full() -> Record {
        let mut r = Record::new(Kind::Conversion, 1_795_012_200_123);
        r.decision_id = Some(H128(u128::MAX - 1));
        r.slot = Some(2);
        r.campaign = Some("cmp-a".into());
        r.creative = Some("cr-a".into());
        r.advertiser = Some("adv".into());
        r.placement = Some("order_confirmation".into());
        r.channel = Some(Channel::InStore);
        r.location = Some("store-042".into());
        r.profile = Some(H128(42));
        r.ids = vec![
            LoggedId {
                kind: IdKind::LoyaltyId,
                hash: H128(7),
            },
            LoggedId {
                kind: IdKind::EmailSha256,
                hash: H128(u128::MAX),
            },
        ];
        r.transaction_id = Some("ORD-1".into());
        r.model = Some(BidModel::Cpc);
        r.price = Some(1_500_000);
        r.cost = Some(-3);
        r.decision_ts = Some(1_795_012_200_000);
        r.order_id = Some("POS-1".into());
        r.conversion_type = Some(ConversionType::Refund);
        r.occurred = Some(1_795_012_100_000);
        r.store_id = Some("store-042".into());
        r.total = Some(9_980_000);
        r.currency = Some("USD".into());
        r.items = vec![
            LoggedItem {
                sku: Some("SKU-77".into()),
                category: Some("grocery/snacks".into()),
                brand: None,
                price: 4_990_000,
                quantity: 2,
            },
            LoggedItem {
                sku: None,
                category: None,
                brand: Some("Crunchy".into()),
                price: 0,
                quantity: 70_000,
            },
        ];
        r.sku = Some("SKU-77".into());
        r.quantity = Some(1);
        r.action = Some("upsert".into());
        r.document = Some("{\"id\":\"cmp-a\"}".into());
        r.version = Some(3);
        r.changed_by = Some("admin".into());
        r.reason = Some("bot_user_agent".into());
        r.event = Some(Kind::Impression);
        r
    }

    #[test]
    fn reads_what_the_writer_writes() {
        let r = full();
        let mut buf = Vec::new();
        r.encode(&mut buf);
        let v = read(&buf).unwrap();
        assert_eq!((v.kind, v.ts, v.unknown_kind), (r.kind, r.ts, false));
        assert_eq!(v.decision_id, Some(u128::MAX - 1));
        assert_eq!(v.slot, Some(2));
        assert_eq!(
            (v.campaign, v.advertiser, v.placement),
            (
                Some(&b"cmp-a"[..]),
                Some(&b"adv"[..]),
                Some(&b"order_confirmation"[..])
            )
        );
        assert_eq!((v.channel, v.profile), (Some(Channel::InStore), Some(42)));
        let ids: Vec<IdHash> = v.ids.ids().map(|i| i.unwrap()).collect();
        let want: Vec<IdHash> = (r.ids.iter())
            .map(|l| IdHash {
                kind: l.kind,
                hash: l.hash.0,
            })
            .collect();
        assert_eq!(ids, want);
        assert_eq!(v.transaction_id, Some(&b"ORD-1"[..]));
        assert_eq!((v.cost, v.price), (Some(-3), Some(1_500_000)));
        assert_eq!(v.order_id, Some(&b"POS-1"[..]));
        assert_eq!(v.conversion_type, Some(ConversionType::Refund));
        assert_eq!((v.occurred, v.total), (r.occurred, r.total));
        assert_eq!(v.currency, Some(&b"USD"[..]));
        let items: Vec<Item> = v.items.items().map(|i| i.unwrap()).collect();
        assert_eq!(items.len(), 2);
        assert_eq!(
            items[0],
            Item {
                sku: Some(b"SKU-77"),
                category: Some(b"grocery/snacks"),
                brand: None,
                price: 4_990_000,
                quantity: 2
            }
        );
        assert_eq!(
            (items[1].brand, items[1].quantity),
            (Some(&b"Crunchy"[..]), 70_000)
        );
        assert_eq!((v.sku, v.quantity), (Some(&b"SKU-77"[..]), Some(1)));
        assert_eq!((v.action, v.version), (Some(&b"upsert"[..]), Some(3)));
        assert_eq!(v.document, Some(&b"{\"id\":\"cmp-a\"}"[..]));
    }

    #[test]
    fn every_kind_reads_back_and_a_filter_stops_early() {
        for kind in Kind::ALL {
            let mut buf = Vec::new();
            Record::new(kind, 5).encode(&mut buf);
            assert_eq!(read(&buf).unwrap().kind, kind);
        }
        let mut buf = Vec::new();
        full().encode(&mut buf);
        let v = read_some(&buf, &|_| Fields::NONE).unwrap();
        assert_eq!(v.kind, Kind::Conversion);
        assert_eq!(
            (v.order_id, v.ts),
            (None, 0),
            "nothing after the kind was read"
        );
        let v = read_some(&buf, &|_| Fields::IDS).unwrap();
        assert_eq!(
            (v.ids.len, v.profile, v.ts),
            (2, Some(42), 1_795_012_200_123)
        );
        assert_eq!((v.order_id, v.campaign, v.items.len), (None, None, 0));
        let v = read_some(&buf, &|_| Fields::SCALARS).unwrap();
        assert_eq!((v.ids.len, v.profile, v.items.len), (0, Some(42), 0));
        assert_eq!(v.order_id, Some(&b"POS-1"[..]));
        assert!(may_have_key(&buf, b"\xa3ids") && may_have_key(&buf, b"\xa5items"));
        let mut bare = Vec::new();
        Record::new(Kind::Decision, 1).encode(&mut bare);
        assert!(!may_have_key(&bare, b"\xa3ids"));
        for len in 0..24 {
            let mut p = vec![0u8; len];
            p.extend_from_slice(b"\xa3ids");
            assert!(may_have_key(&p, b"\xa3ids"), "at {len}");
            assert!(!may_have_key(&p[..p.len() - 1], b"\xa3ids"), "cut at {len}");
        }
    }

    #[test]
    fn unknown_fields_and_kinds_are_tolerated_and_damage_is_an_error() {
        #[derive(serde::Serialize)]
        struct Future<'a> {
            v: u8,
            kind: &'a str,
            ts: i64,
            nested: Vec<(u32, String, Vec<f64>)>,
            big: u64,
            campaign: &'a str,
        }
        let future = |kind| {
            rmp_serde::to_vec_named(&Future {
                v: 2,
                kind,
                ts: -5,
                nested: vec![(1, "x".into(), vec![1.5, -2.0])],
                big: u64::MAX,
                campaign: "c",
            })
            .unwrap()
        };
        let click = future("click");
        let v = read(&click).unwrap();
        assert_eq!(
            (v.kind, v.ts, v.campaign),
            (Kind::Click, -5, Some(&b"c"[..]))
        );
        let teleport = future("teleport");
        let v = read(&teleport).unwrap();
        assert!(v.unknown_kind);
        let mut buf = Vec::new();
        full().encode(&mut buf);
        for cut in [1, buf.len() / 2, buf.len() - 1] {
            assert!(read(&buf[..cut]).is_err(), "cut at {cut}");
        }
        assert!(read(&[0xc1]).is_err());
    }
}
