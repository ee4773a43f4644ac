//! One layer of a [`Snapshot`](super::Snapshot): a campaign list with its value
//! numbers, [`Hot`](super::Hot) records, postings and id map, built in one pass.
//!
//! A snapshot's base is a layer built alone; its delta is a layer built over the base,
//! numbering values in an overlay of the base's dictionary and posting campaign indexes
//! that continue after the base's (see [`super::delta`]).

use super::compiled::CompiledCampaign;
use super::hot::{HotSet, HotSetBuilder};
use super::intern::{Dictionary, FastMap};
use super::postings::TargetingIndex;
use std::collections::HashMap;
use std::sync::Arc;

#[derive(Default)]
pub(super) struct Layer {
    pub campaigns: Vec<Arc<CompiledCampaign>>,
    pub hot: HotSet,
    /// A base layer's whole dictionary; a delta's overlay (values the base lacks).
    pub dict: Dictionary,
    pub index: TargetingIndex,
    /// Campaign id to its index in this layer (not offset by the base's length).
    pub by_id: HashMap<Arc<str>, u32>,
    /// ASCII-lower-cased advertiser name to the advertiser numbers it folds (placement
    /// blocklists compare advertisers ignoring ASCII case). In a delta, only the names
    /// its overlay adds an advertiser to, each with the complete list (the base's
    /// numbers too), so a lookup needs one layer, never a merge.
    pub folded_advertisers: FastMap<Box<str>, Vec<u32>>,
}

impl Layer {
    /// Indexes `campaigns` (compiled, ids unique): alone when `base` is `None`, else as
    /// the delta over `base`, whose campaign indexes start at `base`'s length.
    pub fn build(campaigns: Vec<Arc<CompiledCampaign>>, base: Option<&Layer>) -> Layer {
        let under = base.map(|b| &b.dict);
        let mut dict = under.map_or_else(Dictionary::default, Dictionary::over);
        let mut hot = HotSetBuilder::default();
        let mut by_id = HashMap::with_capacity(campaigns.len());
        for (i, c) in campaigns.iter().enumerate() {
            hot.push(c, &mut dict, under);
            by_id.insert(c.id.clone(), i as u32);
        }
        let hot = hot.finish();
        let first = base.map_or(0, |b| b.campaigns.len());
        let first = u32::try_from(first).expect("fewer than 2^32 campaigns");
        let index = TargetingIndex::build(&hot, &dict, first);
        let mut folded_advertisers = FastMap::<Box<str>, Vec<u32>>::default();
        for (name, n) in dict.advertisers.iter() {
            let folded = name.to_ascii_lowercase();
            let in_base = base.and_then(|b| b.folded_advertisers.get(folded.as_str()));
            let list = folded_advertisers
                .entry(folded.into())
                .or_insert_with(|| in_base.cloned().unwrap_or_default());
            list.push(n);
        }
        Layer {
            campaigns,
            hot,
            dict,
            index,
            by_id,
            folded_advertisers,
        }
    }

    pub fn len(&self) -> usize {
        self.campaigns.len()
    }
}
