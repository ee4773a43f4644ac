//! A decoded record that can cross to another thread: what [`View`] borrows from a
//! payload, moved into a batch's shared text and byte buffers.
//!
//! The reader thread decodes each record and packs it; the attribution thread unpacks a
//! [`View`] again for the price of a few slice operations. Strings and the `ids` and
//! `items` arrays (still encoded: only conversions decode them) go to one buffer per
//! batch.

use super::wire::{Raw, View};
use crate::campaign::Channel;
use crate::exposure::record::{ConversionType, Kind};

/// Where a string is in the batch's bytes; `NONE` for an absent one.
#[derive(Clone, Copy, Debug)]
struct Text(u32, u32);

const NONE: Text = Text(u32::MAX, 0);

/// An array: its element count and where its bytes are in the batch's bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Array(u32, u32, u32);

/// One record, packed. See the module docs.
#[derive(Clone, Debug)]
pub struct Packed {
    kind: Kind,
    unknown_kind: bool,
    ts: i64,
    decision_id: Option<u128>,
    slot: Option<u8>,
    channel: Option<Channel>,
    profile: Option<u128>,
    cost: Option<i64>,
    price: Option<i64>,
    conversion_type: Option<ConversionType>,
    occurred: Option<i64>,
    total: Option<i64>,
    quantity: Option<u32>,
    version: Option<u64>,
    campaign: Text,
    advertiser: Text,
    placement: Text,
    transaction_id: Text,
    order_id: Text,
    currency: Text,
    sku: Text,
    action: Text,
    document: Text,
    ids: Array,
    items: Array,
}

fn put_text(s: Option<&[u8]>, bytes: &mut Vec<u8>) -> Text {
    match s {
        Some(s) => {
            let at = bytes.len();
            bytes.extend_from_slice(s);
            Text(at as u32, s.len() as u32)
        }
        None => NONE,
    }
}

fn get_text(t: Text, bytes: &[u8]) -> Option<&[u8]> {
    (t.0 != u32::MAX).then(|| &bytes[t.0 as usize..(t.0 + t.1) as usize])
}

fn put_array(r: Raw, bytes: &mut Vec<u8>) -> Array {
    if r.is_empty() {
        return Array::default();
    }
    let at = bytes.len();
    bytes.extend_from_slice(r.bytes());
    Array(r.len as u32, at as u32, r.bytes().len() as u32)
}

fn get_array(a: Array, bytes: &[u8]) -> Raw<'_> {
    Raw::new(a.0 as usize, &bytes[a.1 as usize..(a.1 + a.2) as usize])
}

impl Packed {
    /// Packs `v`, copying its strings and arrays into `bytes`. A batch stays far below
    /// 4 GiB, so positions fit in 32 bits.
    pub fn pack(v: &View, bytes: &mut Vec<u8>) -> Packed {
        Packed {
            kind: v.kind,
            unknown_kind: v.unknown_kind,
            ts: v.ts,
            decision_id: v.decision_id,
            slot: v.slot,
            channel: v.channel,
            profile: v.profile,
            cost: v.cost,
            price: v.price,
            conversion_type: v.conversion_type,
            occurred: v.occurred,
            total: v.total,
            quantity: v.quantity,
            version: v.version,
            campaign: put_text(v.campaign, bytes),
            advertiser: put_text(v.advertiser, bytes),
            placement: put_text(v.placement, bytes),
            transaction_id: put_text(v.transaction_id, bytes),
            order_id: put_text(v.order_id, bytes),
            currency: put_text(v.currency, bytes),
            sku: put_text(v.sku, bytes),
            action: put_text(v.action, bytes),
            document: put_text(v.document, bytes),
            ids: put_array(v.ids, bytes),
            items: put_array(v.items, bytes),
        }
    }

    /// The record again, borrowing the batch's buffer it was packed into.
    pub fn view<'a>(&self, bytes: &'a [u8]) -> View<'a> {
        View {
            kind: self.kind,
            unknown_kind: self.unknown_kind,
            ts: self.ts,
            decision_id: self.decision_id,
            slot: self.slot,
            campaign: get_text(self.campaign, bytes),
            advertiser: get_text(self.advertiser, bytes),
            placement: get_text(self.placement, bytes),
            channel: self.channel,
            profile: self.profile,
            ids: get_array(self.ids, bytes),
            transaction_id: get_text(self.transaction_id, bytes),
            cost: self.cost,
            price: self.price,
            order_id: get_text(self.order_id, bytes),
            conversion_type: self.conversion_type,
            occurred: self.occurred,
            total: self.total,
            currency: get_text(self.currency, bytes),
            items: get_array(self.items, bytes),
            sku: get_text(self.sku, bytes),
            quantity: self.quantity,
            action: get_text(self.action, bytes),
            document: get_text(self.document, bytes),
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exposure::record::{H128, LoggedId, LoggedItem, Record};
    use crate::identity::IdKind;

    #[test]
    fn a_record_unpacks_as_it_was_read() {
        let mut r = Record::new(Kind::Conversion, 7);
        r.order_id = Some("POS-1".into());
        r.channel = Some(Channel::InStore);
        r.profile = Some(H128(9));
        r.ids = vec![LoggedId {
            kind: IdKind::LoyaltyId,
            hash: H128(3),
        }];
        r.items = vec![LoggedItem {
            sku: Some("SKU-1".into()),
            category: None,
            brand: Some("Crunchy".into()),
            price: 5,
            quantity: 2,
        }];
        r.total = Some(10);
        let mut payload = Vec::new();
        r.encode(&mut payload);
        let v = super::super::wire::read(&payload).unwrap();
        let mut bytes = vec![1, 2, 3];
        let p = Packed::pack(&v, &mut bytes);
        let u = p.view(&bytes);
        assert_eq!((u.kind, u.ts, u.campaign), (Kind::Conversion, 7, None));
        assert_eq!(u.order_id, Some(&b"POS-1"[..]));
        assert_eq!(
            (u.channel, u.profile, u.total),
            (v.channel, v.profile, v.total)
        );
        assert_eq!(
            u.ids.ids().collect::<Vec<_>>(),
            v.ids.ids().collect::<Vec<_>>()
        );
        assert_eq!(
            u.items.items().collect::<Vec<_>>(),
            v.items.items().collect::<Vec<_>>()
        );
    }
}
