use std::sync::Arc;
use arrow::datatypes::*;
use eddy_connectors::*;

#[tokio::test]
async fn oracle_inputs() {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
    let fields = vec![
        Field::new("id", DataType::Int64, true), Field::new("user_name", DataType::Utf8, true),
        Field::new("email", DataType::Utf8, true), Field::new("tags", DataType::Utf8, true),
        Field::new("amount", DataType::Float64, true), Field::new("qty", DataType::Int32, true),
        Field::new("ts", ts.clone(), true), Field::new("ts2", ts.clone(), true)];
    let t = ConnectorTable { name: "events".into(), schema: Arc::new(Schema::new(fields)), metadata: vec![], primary_key: vec![], partition_keys: vec![],
        options: Options::new([("connector","filesystem"),("path","/work/shared/oracle/scalar_functions/input/events.jsonl"),("format","json")].map(|(k,v)|(k.to_string(),v.to_string()))) };
    let mut src = create_source(&t, Split{index:0,count:1}).unwrap();
    let dir = std::path::PathBuf::from("/tmp/eddy_oracle_out"); let _ = std::fs::remove_dir_all(&dir); struct D(std::path::PathBuf); impl D { fn path(&self) -> &std::path::Path { &self.0 } } let dir = D(dir);
    let mut st = t.clone();
    st.options = Options::new([("connector","filesystem"),("path",dir.path().to_str().unwrap()),("format","csv")].map(|(k,v)|(k.to_string(),v.to_string())));
    let mut sink = create_sink(&st, Split{index:0,count:1}).unwrap();
    let mut pt = t.clone(); pt.options = Options::new([("connector".to_string(),"print".to_string())]);
    let mut print = create_sink(&pt, Split{index:0,count:1}).unwrap();
    let mut n = 0;
    while let Some(b) = src.next_batch().await.unwrap() { n += b.batch.num_rows(); sink.write_batch(&b.batch, None).await.unwrap(); print.write_batch(&b.batch.slice(0, 3), None).await.unwrap(); }
    sink.finish().await.unwrap();
    assert_eq!(n, 2000);
    for e in std::fs::read_dir(dir.path()).unwrap() { let p = e.unwrap().path(); let s = std::fs::read_to_string(&p).unwrap(); println!("{}\n{}", p.display(), s.lines().take(4).collect::<Vec<_>>().join("\n")); }
}
