//! The Nexmark event generator, writing straight into column buffers.
//!
//! Why not the `nexmark` crate's `EventGenerator`: it builds every event as a struct of
//! `String`s, filling each filler string one character at a time through `String::push`,
//! and the source then copied every value again into Arrow builders. Profiling q0 at 10 M
//! events put about 55 % of all CPU there. This module produces exactly the crate's events
//! (same seeds, same random draws in the same order, same derived timestamps; the tests
//! compare the two field by field) but writes bytes and integers directly into the batch's
//! column buffers, skips work the table does not need (an entity the table does not
//! declare, a trailing `extra` it does not read), and allocates nothing per event.
//!
//! Every event's data comes from its own `SmallRng` seeded by the event id, so events can be
//! generated in any order and a skipped one costs nothing. The crate's `NexmarkConfig` is
//! still the options struct (its defaults hold the name lists and hot channels).

use std::f64::consts::PI;
use std::sync::LazyLock;

use nexmark::config::{NexmarkConfig, RateShape};
use rand08::rngs::SmallRng;
use rand08::seq::SliceRandom;
use rand08::{Rng, SeedableRng};

use super::columns::{Entity, EntityColumns, EventColumns};

/// Every `HOT_*` id is the first (or second) of a batch of this many.
const HOT_BATCH: usize = 100;

/// Shortest string of `gen_string_with_delimiter`.
const MIN_STRING_LENGTH: usize = 3;

/// Number of non-hot channels.
const CHANNELS: usize = 10_000;

/// Field positions, as in `columns::PERSON`, `AUCTION` and `BID`.
pub(super) mod field {
    pub const PERSON_ID: usize = 0;
    pub const PERSON_NAME: usize = 1;
    pub const PERSON_EMAIL: usize = 2;
    pub const PERSON_CARD: usize = 3;
    pub const PERSON_CITY: usize = 4;
    pub const PERSON_STATE: usize = 5;
    pub const PERSON_TIME: usize = 6;
    pub const PERSON_EXTRA: usize = 7;

    pub const AUCTION_ID: usize = 0;
    pub const AUCTION_ITEM: usize = 1;
    pub const AUCTION_DESCRIPTION: usize = 2;
    pub const AUCTION_INITIAL_BID: usize = 3;
    pub const AUCTION_RESERVE: usize = 4;
    pub const AUCTION_TIME: usize = 5;
    pub const AUCTION_EXPIRES: usize = 6;
    pub const AUCTION_SELLER: usize = 7;
    pub const AUCTION_CATEGORY: usize = 8;
    pub const AUCTION_EXTRA: usize = 9;

    pub const BID_AUCTION: usize = 0;
    pub const BID_BIDDER: usize = 1;
    pub const BID_PRICE: usize = 2;
    pub const BID_CHANNEL: usize = 3;
    pub const BID_URL: usize = 4;
    pub const BID_TIME: usize = 5;
    pub const BID_EXTRA: usize = 6;
}
use field::*;

/// The non-hot channels and their urls, as the crate derives them (seeded by channel number).
static CHANNEL_URLS: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    (0..CHANNELS)
        .map(|i| {
            let mut url = base_url(i as u64);
            let mut rng = SmallRng::seed_from_u64(i as u64);
            if rng.gen_range(0..10) > 0 {
                url.push_str("&channel_id=");
                url.push_str(&i64::abs((i as i32).reverse_bits() as i64).to_string());
            }
            (format!("channel-{i}"), url)
        })
        .collect()
});

/// A channel's url: three short random path segments.
fn base_url(seed: u64) -> String {
    let mut rng = SmallRng::seed_from_u64(seed);
    let mut segment = || {
        let len = rng.gen_range(MIN_STRING_LENGTH..5);
        (0..len)
            .map(|_| if rng.gen_range(0..13) == 0 { '_' } else { rng.gen_range(b'a'..=b'z') as char })
            .collect::<String>()
    };
    let (a, b, c) = (segment(), segment(), segment());
    format!("https://www.nexmark.com/{a}/{b}/{c}/item.htm?query=1")
}

/// The hot channels' urls (the first four base urls), as in the crate's defaults.
pub(super) fn hot_urls() -> Vec<String> {
    (0..4).map(base_url).collect()
}

/// Event numbering and timing derived from a `NexmarkConfig`, as the crate derives them.
///
/// The arithmetic is the crate's, in `f32`, so that timestamps agree to the millisecond.
#[derive(Debug, Clone)]
pub(super) struct Generator {
    config: NexmarkConfig,
    hot_urls: Vec<String>,
    proportion_denominator: usize,
    step_length: usize,
    events_per_epoch: usize,
    epoch_period: f32,
    /// Delay between events in microseconds, per step of the rate shape.
    inter_event_delays: Vec<f32>,
}

impl Generator {
    /// Eddy always uses one generator timeline, in-order events and event ids equal to event
    /// numbers (`first_event_id` = `first_event_number` = 0), which this module relies on.
    pub(super) fn new(config: NexmarkConfig) -> Self {
        debug_assert!(config.out_of_order_group_size == 1 && config.first_event_id == 0);
        let proportion_denominator = config.person_proportion + config.auction_proportion + config.bid_proportion;
        let generators = config.num_event_generators as f32;
        let rate_to_period = |rate: usize| config.us_per_unit as f32 / rate as f32;
        let mut inter_event_delays = Vec::new();
        if config.first_rate == config.next_rate {
            inter_event_delays.push(rate_to_period(config.first_rate) * generators);
        } else {
            match config.rate_shape {
                RateShape::Square => {
                    inter_event_delays.push(rate_to_period(config.first_rate) * generators);
                    inter_event_delays.push(rate_to_period(config.next_rate) * generators);
                }
                RateShape::Sine => {
                    let mid = (config.first_rate + config.next_rate) as f64 / 2.0;
                    let amp = config.first_rate.saturating_sub(config.next_rate) as f64 / 2.0;
                    for i in 0..config.sine_approx_steps {
                        let r = (2.0 * PI * i as f64) / config.sine_approx_steps as f64;
                        let rate = mid + amp * r.cos();
                        inter_event_delays.push(rate_to_period(rate.round() as usize) * generators);
                    }
                }
            }
        }
        let steps = if config.rate_shape == RateShape::Square { 2 } else { config.sine_approx_steps };
        let step_length = config.rate_period.div_ceil(steps.max(1));
        let mut events_per_epoch = 0;
        let mut epoch_period = 0.0;
        if inter_event_delays.len() > 1 {
            for delay in &inter_event_delays {
                let events = (step_length * 1_000_000) as f32 / delay;
                events_per_epoch += events.round() as usize;
                epoch_period += (events * delay) / 1000.0;
            }
        }
        let hot_urls = hot_urls();
        Self {
            config,
            hot_urls,
            proportion_denominator,
            step_length,
            events_per_epoch,
            epoch_period,
            inter_event_delays,
        }
    }

    /// Event time of event `n`, in epoch milliseconds.
    pub(super) fn timestamp(&self, n: u64) -> u64 {
        let n = n as usize;
        if let [delay] = self.inter_event_delays[..] {
            return self.config.base_time + ((n as f32 * delay) / 1000.0).round() as u64;
        }
        let epoch = n / self.events_per_epoch.max(1);
        let mut event_in_epoch = n % self.events_per_epoch.max(1);
        let mut offset_in_epoch = 0.0;
        for delay in &self.inter_event_delays {
            let events = (self.step_length * 1_000_000) as f32 / delay;
            // The crate compares the out-of-order group size (always 1) here, so every event
            // falls in the first step; kept so that timestamps agree with it.
            if self.config.out_of_order_group_size < events.round() as usize {
                let offset_in_cycle = event_in_epoch as f32 * delay;
                return self.config.base_time
                    + (epoch as f32 * self.epoch_period + offset_in_epoch + offset_in_cycle / 1000.0).round() as u64;
            }
            event_in_epoch = event_in_epoch.wrapping_sub(events.round() as usize);
            offset_in_epoch += (events * delay) / 1000.0;
        }
        0
    }

    /// Which entity event `n` is.
    pub(super) fn entity(&self, n: u64) -> Entity {
        let rem = n as usize % self.proportion_denominator;
        if rem < self.config.person_proportion {
            Entity::Person
        } else if rem < self.config.person_proportion + self.config.auction_proportion {
            Entity::Auction
        } else {
            Entity::Bid
        }
    }

    /// Append event `n` to `out`: its entity's values (the other entities' columns are
    /// NULL at its row).
    pub(super) fn write(&self, n: u64, out: &mut EventColumns) {
        let entity = self.entity(n);
        let time = self.timestamp(n);
        let Some(columns) = out.push(entity) else { return };
        match entity {
            Entity::Person => self.person(n as usize, time, columns),
            Entity::Auction => self.auction(n as usize, time, columns),
            Entity::Bid => self.bid(n as usize, time, columns),
        }
    }

    fn person(&self, event: usize, time: u64, out: &mut EntityColumns) {
        const DRAWS: &[&[usize]] =
            &[&[PERSON_NAME], &[PERSON_EMAIL], &[PERSON_CARD], &[PERSON_CITY], &[PERSON_STATE], &[PERSON_EXTRA]];
        let cfg = &self.config;
        out.int(PERSON_ID, (self.last_person(event) + cfg.first_person_id) as i64);
        out.int(PERSON_TIME, time as i64);
        let stages = out.stages_needed(DRAWS);
        if stages == 0 {
            return;
        }
        let rng = &mut SmallRng::seed_from_u64(event as u64);
        let first = cfg.first_names.choose(rng).map_or("", String::as_str);
        let last = cfg.last_names.choose(rng).map_or("", String::as_str);
        out.append(PERSON_NAME, first.as_bytes());
        out.append(PERSON_NAME, b" ");
        out.append(PERSON_NAME, last.as_bytes());
        out.end_str(PERSON_NAME);
        if stages == 1 {
            return;
        }
        // `{7 letters}@{5 letters}.com`
        out.random(PERSON_EMAIL, rng, 7);
        out.append(PERSON_EMAIL, b"@");
        out.random(PERSON_EMAIL, rng, 5);
        out.append(PERSON_EMAIL, b".com");
        out.end_str(PERSON_EMAIL);
        if stages == 2 {
            return;
        }
        // Four groups of four digits: `{:04} {:04} {:04} {:04}`.
        let mut card = *b"0000 0000 0000 0000";
        for group in card.chunks_mut(5) {
            let mut n: i32 = rng.gen_range(0..10000);
            for digit in group[..4].iter_mut().rev() {
                *digit = b'0' + (n % 10) as u8;
                n /= 10;
            }
        }
        out.append(PERSON_CARD, &card);
        out.end_str(PERSON_CARD);
        let city = cfg.us_cities.choose(rng).map_or("", String::as_str);
        let state = cfg.us_states.choose(rng).map_or("", String::as_str);
        out.str(PERSON_CITY, city);
        out.str(PERSON_STATE, state);
        if stages == DRAWS.len() {
            // The crate counts 8 bytes for the id plus every string.
            let size = 8 + first.len() + 1 + last.len() + 17 + card.len() + city.len() + state.len();
            let len = extra_length(rng, size, cfg.avg_person_byte_size);
            out.random(PERSON_EXTRA, rng, len);
            out.end_str(PERSON_EXTRA);
        }
    }

    fn auction(&self, event: usize, time: u64, out: &mut EntityColumns) {
        const DRAWS: &[&[usize]] = &[
            &[AUCTION_ITEM],
            &[AUCTION_DESCRIPTION],
            &[AUCTION_INITIAL_BID, AUCTION_RESERVE],
            &[AUCTION_EXPIRES],
            &[AUCTION_SELLER],
            &[AUCTION_CATEGORY],
            &[AUCTION_EXTRA],
        ];
        let cfg = &self.config;
        out.int(AUCTION_ID, (self.last_auction(event) + cfg.first_auction_id) as i64);
        out.int(AUCTION_TIME, time as i64);
        let stages = out.stages_needed(DRAWS);
        if stages == 0 {
            return;
        }
        let rng = &mut SmallRng::seed_from_u64(event as u64);
        out.random(AUCTION_ITEM, rng, 20);
        out.end_str(AUCTION_ITEM);
        out.random(AUCTION_DESCRIPTION, rng, 100);
        out.end_str(AUCTION_DESCRIPTION);
        if stages <= 2 {
            return;
        }
        let initial_bid = price(rng);
        out.int(AUCTION_INITIAL_BID, initial_bid as i64);
        out.int(AUCTION_RESERVE, (initial_bid + price(rng)) as i64);
        // The auction runs until about when `in_flight_auctions` later auctions are due.
        let events_ahead = (cfg.in_flight_auctions * self.proportion_denominator) / cfg.auction_proportion;
        let horizon = self.timestamp((event + events_ahead) as u64).wrapping_sub(time);
        let expires = time + 1 + rng.gen_range(0..horizon.wrapping_mul(2).max(1));
        out.int(AUCTION_EXPIRES, expires as i64);
        let seller = if rng.gen_range(0..cfg.hot_seller_ratio) > 0 {
            (self.last_person(event) / HOT_BATCH) * HOT_BATCH
        } else {
            self.next_person(event, rng)
        };
        out.int(AUCTION_SELLER, (seller + cfg.first_person_id) as i64);
        out.int(AUCTION_CATEGORY, (cfg.first_category_id + rng.gen_range(0..cfg.num_categories)) as i64);
        if stages == DRAWS.len() {
            // The crate counts the two strings plus 8 bytes for each of six numbers.
            let len = extra_length(rng, 8 + 20 + 100 + 40, cfg.avg_auction_byte_size);
            out.random(AUCTION_EXTRA, rng, len);
            out.end_str(AUCTION_EXTRA);
        }
    }

    fn bid(&self, event: usize, time: u64, out: &mut EntityColumns) {
        const DRAWS: &[&[usize]] =
            &[&[BID_AUCTION], &[BID_BIDDER], &[BID_PRICE], &[BID_CHANNEL, BID_URL], &[BID_EXTRA]];
        let cfg = &self.config;
        out.int(BID_TIME, time as i64);
        let stages = out.stages_needed(DRAWS);
        if stages == 0 {
            return;
        }
        let rng = &mut SmallRng::seed_from_u64(event as u64);
        let auction = if 0 < rng.gen_range(0..cfg.hot_auction_ratio) {
            (self.last_auction(event) / HOT_BATCH) * HOT_BATCH
        } else {
            self.next_auction(event, rng)
        };
        out.int(BID_AUCTION, (auction + cfg.first_auction_id) as i64);
        if stages == 1 {
            return;
        }
        // Hot bidders are the second person of a batch, so they are not also hot sellers.
        let bidder = if 0 < rng.gen_range(0..cfg.hot_bidder_ratio) {
            (self.last_person(event) / HOT_BATCH) * HOT_BATCH + 1
        } else {
            self.next_person(event, rng)
        };
        out.int(BID_BIDDER, (bidder + cfg.first_person_id) as i64);
        out.int(BID_PRICE, price(rng) as i64);
        if stages == 3 {
            return;
        }
        let (channel, url) = if rng.gen_range(0..cfg.hot_channel_ratio) > 0 {
            let i = rng.gen_range(0..cfg.hot_channels.len());
            (cfg.hot_channels[i].as_str(), self.hot_urls[i].as_str())
        } else {
            CHANNEL_URLS.choose(rng).map_or(("", ""), |(c, u)| (c.as_str(), u.as_str()))
        };
        out.str(BID_CHANNEL, channel);
        out.str(BID_URL, url);
        if stages == DRAWS.len() {
            let len = extra_length(rng, 32, cfg.avg_bid_byte_size);
            out.random(BID_EXTRA, rng, len);
            out.end_str(BID_EXTRA);
        }
    }

    /// The newest person id (base 0) by event `event`; the event's own if it is a person.
    fn last_person(&self, event: usize) -> usize {
        let epoch = event / self.proportion_denominator;
        let offset = (event % self.proportion_denominator).min(self.config.person_proportion - 1);
        epoch * self.config.person_proportion + offset
    }

    /// A random recently active person (base 0).
    fn next_person(&self, event: usize, rng: &mut SmallRng) -> usize {
        let people = self.last_person(event) + 1;
        let active = people.min(self.config.active_people);
        people - active + rng.gen_range(0..active + self.config.person_id_lead)
    }

    /// The newest auction id (base 0) by event `event`; the event's own if it is an auction.
    fn last_auction(&self, event: usize) -> usize {
        let (persons, auctions) = (self.config.person_proportion, self.config.auction_proportion);
        let mut epoch = event / self.proportion_denominator;
        let mut offset = event % self.proportion_denominator;
        if offset < persons {
            epoch = epoch.wrapping_sub(1);
            offset = auctions - 1;
        } else if persons + auctions <= offset {
            offset = auctions - 1;
        } else {
            offset -= persons;
        }
        epoch.wrapping_mul(auctions).wrapping_add(offset)
    }

    /// A random auction among the ones in flight (base 0).
    fn next_auction(&self, event: usize, rng: &mut SmallRng) -> usize {
        let newest = self.last_auction(event);
        let oldest = newest.saturating_sub(self.config.in_flight_auctions);
        oldest + rng.gen_range(0..newest - oldest + 1 + self.config.auction_id_lead)
    }
}

/// A price in cents, log-uniform between 1 and 1,000,000 dollars.
fn price(rng: &mut SmallRng) -> usize {
    (10.0_f32.powf(rng.gen::<f32>() * 6.0) * 100.0).round() as usize
}

/// Length of the `extra` filler that brings an event of `size` bytes to about `average`.
fn extra_length(rng: &mut SmallRng, size: usize, average: usize) -> usize {
    if size > average {
        return 0;
    }
    let wanted = average - size;
    let delta = (wanted + 2) / 5;
    wanted - delta + if delta == 0 { 0 } else { rng.gen_range(0..2 * delta) }
}

/// One random lowercase letter, drawn as the crate's `gen_range(b'a'..=b'z')` draws it
/// (rand 0.8's widening multiply with rejection, on the generator's next `u32`).
#[inline(always)]
pub(super) fn letter(rng: &mut SmallRng) -> u8 {
    const RANGE: u64 = 26;
    // rand 0.8 rejects the top `2^32 mod 26` values of each draw for small integer types.
    const ZONE: u32 = u32::MAX - ((u32::MAX - RANGE as u32 + 1) % RANGE as u32);
    loop {
        let v = rand08::RngCore::next_u32(rng) as u64 * RANGE;
        if (v as u32) <= ZONE {
            return b'a' + (v >> 32) as u8;
        }
    }
}
