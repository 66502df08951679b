use arrow::array::*;
use arrow::datatypes::*;

use super::*;
use crate::test_util::{concat, drain, table};

/// 2024-03-01 10:00:00 UTC.
const BASE: &str = "1709287200000";

fn row(fields: &[(&str, DataType)]) -> DataType {
    DataType::Struct(fields.iter().map(|(n, t)| Field::new(*n, t.clone(), true)).collect::<Vec<_>>().into())
}

fn ts() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

fn nexmark_table(options: &[(&str, &str)]) -> ConnectorTable {
    let person = row(&[
        ("id", DataType::Int64),
        ("name", DataType::Utf8),
        ("emailAddress", DataType::Utf8),
        ("creditCard", DataType::Utf8),
        ("city", DataType::Utf8),
        ("state", DataType::Utf8),
        ("dateTime", ts()),
        ("extra", DataType::Utf8),
    ]);
    let auction = row(&[("id", DataType::Int64), ("seller", DataType::Int64), ("expires", ts())]);
    // Subset, other order, other case, narrower type: all allowed.
    let bid = row(&[("PRICE", DataType::Int32), ("auction", DataType::Int64), ("dateTime", ts())]);
    table(
        vec![
            Field::new("event_type", DataType::Int32, true),
            Field::new("person", person, true),
            Field::new("auction", auction, true),
            Field::new("bid", bid, true),
        ],
        options,
    )
}

/// Every row of the split, back in its sequence order (see [`in_sequence`]); each batch
/// checked to hold its events grouped by type (bids, auctions, persons).
async fn run(t: &ConnectorTable, split: Split) -> RecordBatch {
    let mut src = create_source(t, split, None).unwrap();
    let batches = drain(src.as_mut()).await;
    for b in &batches {
        let types = event_types(t, b);
        let rank = |e: &i32| [2, 1, 0].iter().position(|t| t == e);
        assert!(types.windows(2).all(|w| rank(&w[0]) <= rank(&w[1])), "not grouped by type: {types:?}");
    }
    in_sequence(t, split, &concat(&batches))
}

/// Each row's event type: the `event_type` column, else the entity whose ROW is not NULL,
/// else the one entity the table does not declare.
fn event_types(t: &ConnectorTable, b: &RecordBatch) -> Vec<i32> {
    if let Ok(i) = t.schema.index_of("event_type") {
        return b.column(i).as_primitive::<Int32Type>().values().to_vec();
    }
    let entities: Vec<(i32, Option<usize>)> =
        [(0, "person"), (1, "auction"), (2, "bid")].iter().map(|(e, n)| (*e, t.schema.index_of(n).ok())).collect();
    (0..b.num_rows())
        .map(|row| {
            let valid = entities.iter().find(|(_, c)| c.is_some_and(|c| b.column(c).is_valid(row)));
            let missing = entities.iter().find(|(_, c)| c.is_none());
            valid.or(missing).map(|(e, _)| *e).expect("a row of some entity")
        })
        .collect()
}

/// The rows of a split's output (grouped by type within each batch) in the split's sequence
/// order: the k-th event of a type in the sequence is the k-th row of that type.
fn in_sequence(t: &ConnectorTable, split: Split, b: &RecordBatch) -> RecordBatch {
    let generator = Generator::new(Config::parse(t).unwrap().generator);
    let mut rows_of: [std::collections::VecDeque<u32>; 3] = Default::default();
    for (row, e) in event_types(t, b).into_iter().enumerate() {
        rows_of[e as usize].push_back(row as u32);
    }
    let order: Vec<u32> = (0..b.num_rows() as u64)
        .map(|k| {
            let e = generator.entity(split.index as u64 + k * split.count as u64).event_type() as usize;
            rows_of[e].pop_front().expect("as many rows of each type as the sequence has")
        })
        .collect();
    arrow::compute::take_record_batch(b, &UInt32Array::from(order)).unwrap()
}

#[tokio::test]
async fn deterministic_columns() {
    let t = nexmark_table(&[
        ("connector", "nexmark"),
        ("events.num", "100"),
        ("first-event.rate", "1000"),
        ("next-event.rate", "1000"),
        ("base-time", BASE),
    ]);
    assert!(is_bounded(&t).unwrap());
    let b = run(&t, Split { index: 0, count: 1 }).await;
    assert_eq!(b.num_rows(), 100);
    let kinds = b.column(0).as_primitive::<Int32Type>();
    // Proportions 1:3:46 — event 0 a person, 1..=3 auctions, 4..=49 bids, 50 a person.
    assert_eq!(&kinds.values()[..5], &[0, 1, 1, 1, 2]);
    assert_eq!(kinds.value(50), 0);

    let person = b.column(1).as_struct();
    assert!(person.is_valid(0) && person.is_null(1));
    assert_eq!(person.column(0).as_primitive::<Int64Type>().value(0), 1000);
    // The generator's first person (seeded by event id 0), as in the nexmark crate's own test.
    assert_eq!(person.column(1).as_string::<i32>().value(0), "vicky noris");
    assert_eq!(person.column(2).as_string::<i32>().value(0), "yplkvgz@qbxfg.com");
    assert_eq!(person.column(3).as_string::<i32>().value(0), "7878 5821 1864 2539");
    assert_eq!(person.column(6).as_primitive::<TimestampMillisecondType>().value(0), 1709287200000);

    let bid = b.column(3).as_struct();
    assert!(bid.is_null(0) && bid.is_valid(4));
    assert_eq!(bid.column(0).data_type(), &DataType::Int32);
    // At 1000 events/s event i is due i ms after base-time.
    assert_eq!(bid.column(2).as_primitive::<TimestampMillisecondType>().value(4), 1709287200004);
    let auction = b.column(2).as_struct();
    assert_eq!(auction.column(0).as_primitive::<Int64Type>().value(1), 1000);
    assert!(auction.column(2).as_primitive::<TimestampMillisecondType>().value(1) > 1709287200001);

    // Same options, same rows.
    assert_eq!(run(&t, Split { index: 0, count: 1 }).await, b);
}

#[tokio::test]
async fn subtasks_split_the_one_sequence() {
    let opts = [("connector", "nexmark"), ("events.num", "60"), ("first-event.rate", "1000000"), ("base-time", BASE)];
    let t = nexmark_table(&opts);
    let whole = run(&t, Split { index: 0, count: 1 }).await;
    let parts = [
        run(&t, Split { index: 0, count: 3 }).await,
        run(&t, Split { index: 1, count: 3 }).await,
        run(&t, Split { index: 2, count: 3 }).await,
    ];
    assert_eq!(parts.iter().map(|p| p.num_rows()).sum::<usize>(), 60);
    // Subtask i holds events i, i + 3, ...: interleaving them gives the single-subtask stream.
    for (k, part) in parts.iter().enumerate() {
        let idx = UInt32Array::from_iter_values((k as u32..60).step_by(3));
        let expected = arrow::compute::take_record_batch(&whole, &idx).unwrap();
        assert_eq!(part, &expected);
    }
}

#[tokio::test]
async fn paced_by_event_time() {
    let t = nexmark_table(&[("connector", "nexmark"), ("events.num", "200"), ("first-event.rate", "1000")]);
    let start = std::time::Instant::now();
    let b = run(&t, Split { index: 0, count: 1 }).await;
    assert_eq!(b.num_rows(), 200);
    // The last event is due 199 ms after the first.
    assert!(start.elapsed() >= std::time::Duration::from_millis(190), "{:?}", start.elapsed());
    assert!(!is_bounded(&nexmark_table(&[("connector", "nexmark")])).unwrap());
}

#[test]
fn bad_tables_are_rejected() {
    let e = validate(&nexmark_table(&[("connector", "nexmark"), ("events.nun", "5")])).unwrap_err().to_string();
    assert!(e.contains("events.nun"), "{e}");
    let e = validate(&nexmark_table(&[("connector", "nexmark"), ("rate.shape", "zigzag")])).unwrap_err().to_string();
    assert!(e.contains("rate.shape"), "{e}");
    let e = validate(&nexmark_table(&[("connector", "nexmark"), ("person.proportion", "0")])).unwrap_err().to_string();
    assert!(e.contains("person.proportion"), "{e}");
    let t = table(vec![Field::new("bid", row(&[("cost", DataType::Int64)]), true)], &[("connector", "nexmark")]);
    let e = validate(&t).unwrap_err().to_string();
    assert!(e.contains("'cost'") && e.contains("price"), "{e}");
    let t = table(vec![Field::new("x", DataType::Int64, true)], &[("connector", "nexmark")]);
    assert!(validate(&t).unwrap_err().to_string().contains("no column 'x'"));
}

/// Read `first` batches, checkpoint, and read the rest from a source resumed at the position.
async fn run_with_restart(t: &ConnectorTable, split: Split, first: usize) -> RecordBatch {
    let mut src = create_source(t, split, None).unwrap();
    let mut batches = Vec::new();
    for _ in 0..first {
        batches.push(src.next_batch().await.unwrap().unwrap().batch);
    }
    let position = src.position().unwrap();
    drop(src);
    let mut resumed = crate::create_source_at(t, split, Some(&position)).unwrap();
    batches.extend(drain(resumed.as_mut()).await);
    in_sequence(t, split, &concat(&batches))
}

#[tokio::test]
async fn resumed_split_emits_the_same_events() {
    // No base-time: the position carries the clock's base time, so timestamps match too.
    let t = nexmark_table(&[("connector", "nexmark"), ("events.num", "300"), ("first-event.rate", "2000")]);
    let whole = run(&t, Split { index: 0, count: 1 }).await;
    assert_eq!(whole.num_rows(), 300);
    let mut src = create_source(&t, Split { index: 0, count: 1 }, None).unwrap();
    let first = src.next_batch().await.unwrap().unwrap().batch;
    let position = src.position().unwrap();
    assert_eq!(position["next_event"], serde_json::json!(first.num_rows()));
    drop(src);
    let resumed = {
        let mut src = crate::create_source_at(&t, Split { index: 0, count: 1 }, Some(&position)).unwrap();
        concat(&drain(src.as_mut()).await)
    };
    let both = in_sequence(&t, Split { index: 0, count: 1 }, &concat(&[first, resumed]));
    // Event ids and timestamps derive from the base time: drop nothing but compare all.
    let with_base = |base: &serde_json::Value| {
        nexmark_table(&[
            ("connector", "nexmark"),
            ("events.num", "300"),
            ("first-event.rate", "2000"),
            ("base-time", &base.to_string()),
        ])
    };
    let fixed = with_base(&position["base_time"]);
    assert_eq!(both, run(&fixed, Split { index: 0, count: 1 }).await);
    // With base-time given, and over two splits, restarting after a few batches.
    let t = nexmark_table(&[
        ("connector", "nexmark"),
        ("events.num", "300"),
        ("first-event.rate", "5000"),
        ("base-time", BASE),
    ]);
    for index in 0..2 {
        let split = Split { index, count: 2 };
        let straight = run(&t, split).await;
        for first in [1, 2] {
            assert_eq!(run_with_restart(&t, split, first).await, straight, "split {index}, restart after {first}");
        }
    }
}

#[test]
fn position_of_another_split_is_refused() {
    let t = nexmark_table(&[("connector", "nexmark"), ("base-time", BASE)]);
    let at = |p: serde_json::Value, index| crate::create_source_at(&t, Split { index, count: 3 }, Some(&p)).err();
    let e = at(serde_json::json!({ "next_event": 7, "base_time": 1 }), 0).unwrap().to_string();
    assert!(e.contains("does not belong to split 0 of 3"), "{e}");
    assert!(at(serde_json::json!({ "next_event": 7, "base_time": 1 }), 1).is_none());
    let e = at(serde_json::json!({ "next_event": 7 }), 1).unwrap().to_string();
    assert!(e.contains("base_time"), "{e}");
}

/// Every column the Flink nexmark DDL declares, in the generator's natural types.
fn full_table(options: &[(&str, &str)]) -> ConnectorTable {
    fn fields<'a>(names: &[(&'a str, char)]) -> Vec<(&'a str, DataType)> {
        names
            .iter()
            .map(|(n, k)| {
                let t = match k {
                    'i' => DataType::Int64,
                    't' => ts(),
                    _ => DataType::Utf8,
                };
                (*n, t)
            })
            .collect()
    }
    let person = fields(&[
        ("id", 'i'),
        ("name", 's'),
        ("emailAddress", 's'),
        ("creditCard", 's'),
        ("city", 's'),
        ("state", 's'),
        ("dateTime", 't'),
        ("extra", 's'),
    ]);
    let auction = fields(&[
        ("id", 'i'),
        ("itemName", 's'),
        ("description", 's'),
        ("initialBid", 'i'),
        ("reserve", 'i'),
        ("dateTime", 't'),
        ("expires", 't'),
        ("seller", 'i'),
        ("category", 'i'),
        ("extra", 's'),
    ]);
    let bid = fields(&[
        ("auction", 'i'),
        ("bidder", 'i'),
        ("price", 'i'),
        ("channel", 's'),
        ("url", 's'),
        ("dateTime", 't'),
        ("extra", 's'),
    ]);
    table(
        vec![
            Field::new("event_type", DataType::Int32, true),
            Field::new("person", row(&person), true),
            Field::new("auction", row(&auction), true),
            Field::new("bid", row(&bid), true),
        ],
        options,
    )
}

/// The nexmark crate's own event, as the text of its fields in the DDL's order.
fn crate_event(e: &nexmark::event::Event) -> (i32, Vec<String>) {
    use nexmark::event::Event;
    match e {
        Event::Person(p) => (
            0,
            vec![
                p.id.to_string(),
                p.name.clone(),
                p.email_address.clone(),
                p.credit_card.clone(),
                p.city.clone(),
                p.state.clone(),
                p.date_time.to_string(),
                p.extra.clone(),
            ],
        ),
        Event::Auction(a) => (
            1,
            vec![
                a.id.to_string(),
                a.item_name.clone(),
                a.description.clone(),
                a.initial_bid.to_string(),
                a.reserve.to_string(),
                a.date_time.to_string(),
                a.expires.to_string(),
                a.seller.to_string(),
                a.category.to_string(),
                a.extra.clone(),
            ],
        ),
        Event::Bid(b) => (
            2,
            vec![
                b.auction.to_string(),
                b.bidder.to_string(),
                b.price.to_string(),
                b.channel.clone(),
                b.url.clone(),
                b.date_time.to_string(),
                b.extra.clone(),
            ],
        ),
    }
}

/// Row `i` of a `full_table` batch, as `crate_event` writes it.
fn batch_event(b: &RecordBatch, i: usize) -> (i32, Vec<String>) {
    let kind = b.column(0).as_primitive::<Int32Type>().value(i);
    let row = b.column(1 + kind as usize).as_struct();
    assert!(row.is_valid(i), "row {i}: its entity's column is null");
    for other in (1..4).filter(|c| *c != 1 + kind as usize) {
        assert!(b.column(other).is_null(i), "row {i}: column {other} is not null");
    }
    let cell = |c: &ArrayRef| match c.data_type() {
        DataType::Int64 => c.as_primitive::<Int64Type>().value(i).to_string(),
        DataType::Timestamp(..) => c.as_primitive::<TimestampMillisecondType>().value(i).to_string(),
        _ => c.as_string::<i32>().value(i).to_string(),
    };
    (kind, row.columns().iter().map(cell).collect())
}

#[tokio::test]
async fn events_are_the_nexmark_crates() {
    let configs: &[&[(&str, &str)]] = &[
        &[("first-event.rate", "1000000"), ("next-event.rate", "1000000")],
        // Other sizes, proportions and hot ratios; sizes below the fixed fields' make no extra.
        &[
            ("first-event.rate", "1000000"),
            ("next-event.rate", "1000000"),
            ("person.avg-size", "40"),
            ("auction.avg-size", "1000"),
            ("bid.avg-size", "300"),
            ("person.proportion", "2"),
            ("auction.proportion", "5"),
            ("bid.proportion", "13"),
            ("bid.hot-ratio.auctions", "3"),
            ("bid.hot-ratio.bidders", "1"),
            ("auction.hot-ratio.sellers", "7"),
        ],
        // Rate shapes with several inter-event delays.
        &[
            ("rate.shape", "sine"),
            ("first-event.rate", "400000"),
            ("next-event.rate", "100000"),
            ("rate.period", "3 s"),
        ],
        &[
            ("rate.shape", "square"),
            ("first-event.rate", "100000"),
            ("next-event.rate", "300000"),
            ("rate.period", "2 s"),
        ],
    ];
    const EVENTS: u64 = 4000;
    for options in configs {
        let mut options = options.to_vec();
        options.extend([("connector", "nexmark"), ("base-time", BASE), ("events.num", "4000")]);
        let t = full_table(&options);
        let config = Config::parse(&t).unwrap();
        for (index, count) in [(0, 1), (1, 3)] {
            let ours = run(&t, Split { index, count }).await;
            let theirs = nexmark::EventGenerator::new(config.generator.clone())
                .with_offset(index as u64)
                .with_step(count as u64)
                .take((EVENTS - index as u64).div_ceil(count as u64) as usize)
                .collect::<Vec<_>>();
            assert_eq!(ours.num_rows(), theirs.len(), "{options:?}");
            for (i, e) in theirs.iter().enumerate() {
                assert_eq!(batch_event(&ours, i), crate_event(e), "{options:?}, split {index} of {count}, row {i}");
            }
        }
    }
}

#[tokio::test]
async fn undeclared_fields_do_not_change_declared_ones() {
    let opts = [("connector", "nexmark"), ("events.num", "500"), ("first-event.rate", "1000000"), ("base-time", BASE)];
    let full = run(&full_table(&opts), Split { index: 0, count: 1 }).await;
    // Only bid.extra and auction.expires: the draws before them are made but not kept.
    let t = table(
        vec![
            Field::new("auction", row(&[("expires", ts())]), true),
            Field::new("bid", row(&[("extra", DataType::Utf8)]), true),
        ],
        &opts,
    );
    let part = run(&t, Split { index: 0, count: 1 }).await;
    assert_eq!(part.num_rows(), 500);
    assert_eq!(part.column(0).as_struct().column(0), full.column(2).as_struct().column(6));
    assert_eq!(part.column(1).as_struct().column(0), full.column(3).as_struct().column(6));
    assert!(part.column(1).as_struct().column(0).as_string::<i32>().value(4).len() > 20);
}

#[tokio::test]
async fn unread_parts_are_null_and_the_rest_unchanged() {
    let opts = [("connector", "nexmark"), ("events.num", "500"), ("first-event.rate", "1000000"), ("base-time", BASE)];
    let full = run(&full_table(&opts), Split { index: 0, count: 1 }).await;
    let mut t = full_table(&opts);
    // A bid-only job reading auction, price and dateTime: no person, auction or bid strings.
    t.unread = vec![(1, None), (2, Some("extra".into())), (2, Some("itemName".into()))];
    t.unread.extend(["bidder", "channel", "url", "extra"].map(|f| (3, Some(f.to_string()))));
    let part = run(&t, Split { index: 0, count: 1 }).await;
    assert_eq!(part.schema(), full.schema());
    assert_eq!(part.column(0), full.column(0));
    assert_eq!(part.column(1).null_count(), 500);
    let (pa, fa) = (part.column(2).as_struct(), full.column(2).as_struct());
    assert_eq!(pa.column(1).null_count(), 500);
    assert_eq!(pa.column(9).null_count(), 500);
    for i in [0, 2, 3, 4, 5, 6, 7, 8] {
        assert_eq!(pa.column(i), fa.column(i), "auction field {i}");
    }
    let (pb, fb) = (part.column(3).as_struct(), full.column(3).as_struct());
    assert!(pb.column(4).as_string::<i32>().iter().all(|v| v.is_none()));
    for i in [0, 2, 5] {
        assert_eq!(pb.column(i), fb.column(i), "bid field {i}");
    }
    assert_eq!(pb.nulls(), fb.nulls());
}
