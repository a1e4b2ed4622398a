//! Each task called as the plain function it is, on small slices of the digits data.

use std::path::{Path, PathBuf};

use super::data::{Table, digits_csv, read_parquet, write_whole};
use super::model::{Forest, load_model, save_model, train};
use super::*;

/// A context with the pipeline's params pointing into `dir`, and a low row minimum that
/// suits the fixtures.
fn context(dir: &Path, task: &str) -> TaskContext {
    let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
    TaskContext::for_test("ml_training_pipeline", task)
        .with_param("raw_dir", path("raw"))
        .with_param("models_dir", path("models"))
        .with_param("data_dir", path("data"))
        .with_param("threshold", 0.8)
        .with_param("min_rows", 100)
}

/// The first `rows` digits as a raw CSV in `dir`.
fn raw_csv(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join("digits.csv");
    let (text, written) = digits_csv(rows);
    assert_eq!(written, rows);
    write_whole(&path, text.as_bytes()).unwrap();
    path
}

/// A local file as the path `land_raw_data` hands to `load_data`.
fn object(path: &Path) -> ObjectPath {
    ObjectPath::parse(&path.to_string_lossy()).unwrap()
}

/// The first `rows` digits loaded as the pipeline's data set.
fn dataset(dir: &Path, rows: usize) -> Dataset {
    let raw = raw_csv(dir, rows);
    load_data(&context(dir, "load_data"), object(&raw)).unwrap()
}

fn train_context(dir: &Path, rows: usize) -> TaskContext {
    context(dir, "train_model")
        .with_xcom("load_data", "row_count", &rows)
        .unwrap()
}

/// Empties the cells of `column` in the data rows that `rows` picks (by 0-based index).
fn empty_cells(csv: &Path, column: usize, rows: impl Fn(usize) -> bool) {
    let text = std::fs::read_to_string(csv).unwrap();
    let mut lines = text.lines();
    let mut out = format!("{}\n", lines.next().unwrap());
    for (i, line) in lines.enumerate() {
        let mut cells: Vec<&str> = line.split(',').collect();
        if rows(i) {
            cells[column] = "";
        }
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    std::fs::write(csv, out).unwrap();
}

fn load_error(dir: &Path, csv: PathBuf) -> String {
    format!(
        "{:#}",
        load_data(&context(dir, "load_data"), object(&csv)).unwrap_err()
    )
}

#[test]
fn land_raw_data_writes_the_digits_once() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = context(dir.path(), "land_raw_data");
    let landed = land_raw_data(&ctx).unwrap();
    let csv = dir.path().join("raw").join(RAW_FILE);
    assert_eq!(landed.local_path(), Some(csv.clone()));
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), 1 + 1797);
    assert!(text.starts_with("pixel_0,pixel_1,"), "{}", &text[..40]);
    assert!(text.lines().next().unwrap().ends_with(",pixel_63,label"));
    // A file already landed (by an upstream system, or an earlier run) is kept.
    std::fs::write(&csv, "landed by someone else\n").unwrap();
    assert_eq!(land_raw_data(&ctx).unwrap(), landed);
    assert_eq!(
        std::fs::read_to_string(&csv).unwrap(),
        "landed by someone else\n"
    );
}

#[test]
fn land_raw_data_takes_a_url_as_well_as_a_path() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("file://{}/landing/", dir.path().display());
    let ctx = context(dir.path(), "land_raw_data").with_param("raw_dir", url.as_str());
    let landed = land_raw_data(&ctx).unwrap();
    assert_eq!(landed.url(), format!("{url}{RAW_FILE}"));
    let data = load_data(&context(dir.path(), "load_data"), landed).unwrap();
    assert_eq!(data.rows, 1797);
}

#[test]
fn land_raw_data_names_a_location_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    for (raw_dir, expected) in [
        ("ftp://host/raw", "flow does not support the scheme `ftp`"),
        ("", "invalid object path ``: it is empty"),
    ] {
        let ctx = context(dir.path(), "land_raw_data").with_param("raw_dir", raw_dir);
        let err = land_raw_data(&ctx).unwrap_err().to_string();
        assert!(err.contains(expected), "{raw_dir:?}: {err}");
    }
}

#[test]
fn load_data_names_the_url_of_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = object(&dir.path().join("raw").join(RAW_FILE));
    let err = format!(
        "{:#}",
        load_data(&context(dir.path(), "load_data"), missing.clone()).unwrap_err()
    );
    assert!(err.contains(&format!("nothing at `{missing}`")), "{err}");
}

#[test]
fn load_data_writes_parquet_and_pushes_the_row_count() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_csv(dir.path(), 200);
    let ctx = context(dir.path(), "load_data");
    let data = load_data(&ctx, object(&raw)).unwrap();
    assert_eq!((data.rows, data.features), (200, 64));
    assert!(data.parquet.starts_with(dir.path().join("data")));
    assert_eq!(
        ctx.xcom_pull::<usize>("load_data", "row_count").unwrap(),
        200
    );
    let table = read_parquet(&data.parquet).unwrap();
    assert_eq!(table.rows(), 200);
    assert_eq!(table.names[3], "pixel_3");
    // The first digit is a 0; its pixels survive the round trip.
    assert_eq!(table.labels[..3], [0, 1, 2]);
    assert_eq!(table.columns[2][0], Some(5.0));
}

#[test]
fn load_data_fails_on_too_few_rows() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_csv(dir.path(), 12);
    let ctx = context(dir.path(), "load_data").with_param("min_rows", 1000);
    let err = format!("{:#}", load_data(&ctx, object(&raw)).unwrap_err());
    assert!(
        err.ends_with(&format!(
            "{} has 12 rows; at least 1000 are needed",
            object(&raw)
        )),
        "{err}"
    );
}

#[test]
fn load_data_fails_on_a_column_too_often_empty() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_csv(dir.path(), 200);
    empty_cells(&raw, 3, |row| row % 5 < 2); // 40%
    empty_cells(&raw, 4, |row| row % 20 == 0); // 5%: at the limit, allowed
    let err = load_error(dir.path(), raw);
    assert!(
        err.ends_with(
            "column pixel_3 has 40% empty cells (limit 5%); fix or drop those columns upstream"
        ),
        "{err}"
    );
}

#[test]
fn load_data_keeps_a_few_empty_cells_as_nulls() {
    let dir = tempfile::tempdir().unwrap();
    let raw = raw_csv(dir.path(), 200);
    empty_cells(&raw, 10, |row| row % 25 == 0); // 8 of 200: 4%
    let data = load_data(&context(dir.path(), "load_data"), object(&raw)).unwrap();
    let table = read_parquet(&data.parquet).unwrap();
    assert_eq!(table.columns[10].iter().filter(|c| c.is_none()).count(), 8);
    assert!(table.columns[11].iter().all(Option::is_some));
}

#[test]
fn load_data_names_bad_cells_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("bad.csv");
    std::fs::write(&csv, "a,b,label\n1,2,0\n1,oops,1\n").unwrap();
    let err = load_error(dir.path(), csv.clone());
    assert!(
        err.contains("bad.csv:3: column b: `oops` is not a number"),
        "{err}"
    );

    std::fs::write(&csv, "a,b,label\n1,2,\n").unwrap();
    let err = load_error(dir.path(), csv.clone());
    assert!(
        err.contains("bad.csv:2: the `label` cell is empty"),
        "{err}"
    );

    std::fs::write(&csv, "a,b,label\n1,2,seven\n").unwrap();
    let err = load_error(dir.path(), csv.clone());
    assert!(err.contains("label `seven` is not a class number"), "{err}");

    std::fs::write(&csv, "a,b,class\n1,2,0\n").unwrap();
    let err = load_error(dir.path(), csv.clone());
    assert!(
        err.contains("has no `label` column (its header: a,b,class)"),
        "{err}"
    );

    std::fs::write(&csv, "a,b,label\n1,2,0\n1,2\n").unwrap();
    let err = load_error(dir.path(), csv.clone());
    assert!(err.contains("bad.csv: a malformed row"), "{err}");
}

#[test]
fn train_model_fits_a_forest_on_the_training_split() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 200);
    let model = train_model(&train_context(dir.path(), 200), data.clone()).unwrap();
    assert_eq!(model.trained_on, 160);
    let forest = load_model(&model.bytes).unwrap();
    // A forest remembers its training rows well.
    let table = read_parquet(&data.parquet).unwrap();
    let (train_rows, _) = model::split(table.rows());
    assert!(model::accuracy(&forest, &table, &train_rows).unwrap() > 0.95);
}

#[test]
fn train_model_needs_the_row_count_from_load_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 200);
    let err = train_model(&context(dir.path(), "train_model"), data)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no XCom `row_count` from task `load_data`"),
        "{err}"
    );
}

#[test]
fn evaluate_model_pushes_the_accuracy_and_holds_the_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 400);
    let model = train_model(&train_context(dir.path(), 400), data.clone()).unwrap();
    let ctx = context(dir.path(), "evaluate_model");
    let before = Utc::now();
    let metrics = block_on(evaluate_model(&ctx, model.clone(), data.clone())).unwrap();
    assert_eq!(metrics.evaluated_on, 80);
    assert!(metrics.accuracy >= 0.8, "{metrics:?}");
    let pushed: AccuracyRecord = ctx.xcom_pull("evaluate_model", "accuracy").unwrap();
    assert_eq!(pushed.accuracy, metrics.accuracy);
    assert!(pushed.measured_at >= before);

    let strict = context(dir.path(), "evaluate_model").with_param("threshold", 1.01);
    let err = block_on(evaluate_model(&strict, model, data))
        .unwrap_err()
        .to_string();
    assert!(err.contains("is below the threshold 1.01"), "{err}");
}

#[test]
fn evaluate_model_rejects_a_weak_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 200);
    let err = block_on(evaluate_model(
        &context(dir.path(), "evaluate_model"),
        weak_model(),
        data,
    ))
    .unwrap_err()
    .to_string();
    assert!(err.contains("below the threshold 0.8"), "{err}");
}

#[test]
fn evaluate_model_rejects_bytes_that_are_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dataset(dir.path(), 200);
    let junk = TrainedModel {
        bytes: vec![1, 2, 3],
        trained_on: 0,
    };
    let err = block_on(evaluate_model(
        &context(dir.path(), "evaluate_model"),
        junk,
        data,
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("not a random forest saved by this pipeline"),
        "{err}"
    );
}

#[test]
fn deployment_branches_on_accuracy() {
    let at = |accuracy| {
        choose_deployment(Metrics {
            accuracy,
            evaluated_on: 100,
        })
    };
    assert_eq!(at(0.95), Branch::to("deploy_production"));
    assert_eq!(at(0.9), Branch::to("deploy_staging"));
    assert_eq!(at(0.85), Branch::to("deploy_staging"));
}

#[test]
fn deploy_tasks_write_the_model_under_models_dir() {
    let dir = tempfile::tempdir().unwrap();
    let model = weak_model();
    let production =
        deploy_production(&context(dir.path(), "deploy_production"), model.clone()).unwrap();
    assert_eq!(production, dir.path().join("models/production/model.bin"));
    assert_eq!(std::fs::read(&production).unwrap(), model.bytes);
    assert!(load_model(&std::fs::read(&production).unwrap()).is_ok());
    let staging = deploy_staging(&context(dir.path(), "deploy_staging"), model).unwrap();
    assert_eq!(staging, dir.path().join("models/staging/model.bin"));

    let bad = context(dir.path(), "deploy_staging").with_param("models_dir", "");
    let err = deploy_staging(&bad, weak_model()).unwrap_err().to_string();
    assert!(err.contains("param `models_dir` is empty"), "{err}");
}

/// A forest that saw one blank 0 and one dark 1, so it answers 0 or 1 to every digit.
fn weak_model() -> TrainedModel {
    let table = Table {
        names: (0..64).map(|i| format!("pixel_{i}")).collect(),
        columns: vec![vec![Some(0.0), Some(16.0)]; 64],
        labels: vec![0, 1],
    };
    let forest: Forest = train(&table, &[0, 1]).unwrap();
    TrainedModel {
        bytes: save_model(&forest).unwrap(),
        trained_on: 2,
    }
}
