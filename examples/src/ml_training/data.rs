//! The pipeline's data: the digits data set landed as CSV, the CSV read and validated
//! into a [`Table`], and the table's Parquet copy that training and evaluation read.

use std::fmt::Write as _;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, bail, ensure};
use arrow_array::cast::AsArray as _;
use arrow_array::types::{Float32Type, UInt32Type};
use arrow_array::{
    Array as _, ArrayRef, Float32Array, RecordBatch, RecordBatchReader as _, UInt32Array,
};
use arrow_schema::{DataType, Field, Schema};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

/// The column that holds each row's class.
pub const LABEL: &str = "label";
/// The largest share of empty cells a feature column may have; the rest read as 0.
pub const MAX_EMPTY_SHARE: f64 = 0.05;

/// A labelled table, column by column: what the CSV held and the Parquet file keeps.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// The feature columns' names, in file order.
    pub names: Vec<String>,
    /// One vector per feature column, one cell per row; `None` is an empty cell.
    pub columns: Vec<Vec<Option<f32>>>,
    /// Each row's class.
    pub labels: Vec<u32>,
}

impl Table {
    /// Its number of rows.
    pub fn rows(&self) -> usize {
        self.labels.len()
    }
}

/// The first `max_rows` rows of smartcore's digits data set (1,797 handwritten digits, 8x8
/// pixels of intensity 0-16) as CSV with a header `pixel_0,...,pixel_63,label`, and how
/// many rows it holds.
pub fn digits_csv(max_rows: usize) -> (String, usize) {
    let digits = smartcore::dataset::digits::load_dataset();
    let features = digits.num_features;
    let rows = digits.num_samples.min(max_rows);
    let mut text: String = (0..features).map(|i| format!("pixel_{i},")).collect();
    text.push_str(LABEL);
    text.push('\n');
    for row in 0..rows {
        for value in &digits.data[row * features..(row + 1) * features] {
            let _ = write!(text, "{value},");
        }
        let _ = writeln!(text, "{}", digits.target[row]);
    }
    (text, rows)
}

/// Reads a CSV (its bytes, and its name for messages) with a header, a `label` column of
/// class numbers and numeric feature columns, and checks it: at least `min_rows` rows,
/// every cell a number, every row labelled, and no feature column more than
/// [`MAX_EMPTY_SHARE`] empty.
pub fn read_csv(bytes: &[u8], shown: &str, min_rows: usize) -> anyhow::Result<Table> {
    let mut reader = csv::Reader::from_reader(bytes);
    let header = reader
        .headers()
        .with_context(|| format!("{shown}: cannot read the header"))?
        .clone();
    let label_at = header.iter().position(|name| name.trim() == LABEL);
    let Some(label_at) = label_at else {
        bail!(
            "{shown} has no `{LABEL}` column (its header: {}); name the class column `{LABEL}`",
            header.iter().collect::<Vec<_>>().join(",")
        );
    };
    ensure!(
        header.len() > 1,
        "{shown} has only the `{LABEL}` column; it needs feature columns too"
    );
    let names: Vec<String> = header
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != label_at)
        .map(|(_, name)| name.trim().to_string())
        .collect();
    let mut columns: Vec<Vec<Option<f32>>> = vec![Vec::new(); names.len()];
    let mut labels = Vec::new();
    for record in reader.records() {
        let record = record.with_context(|| format!("{shown}: a malformed row"))?;
        let line = record.position().map_or(0, |p| p.line());
        let mut feature = 0;
        for (i, cell) in record.iter().enumerate() {
            let cell = cell.trim();
            if i == label_at {
                ensure!(
                    !cell.is_empty(),
                    "{shown}:{line}: the `{LABEL}` cell is empty; every row needs its class"
                );
                let label = cell.parse().with_context(|| {
                    format!("{shown}:{line}: label `{cell}` is not a class number (0, 1, 2, ...)")
                })?;
                labels.push(label);
            } else {
                columns[feature].push(if cell.is_empty() {
                    None
                } else {
                    Some(
                        number(cell).with_context(|| {
                            format!("{shown}:{line}: column {}", names[feature])
                        })?,
                    )
                });
                feature += 1;
            }
        }
    }
    let rows = labels.len();
    ensure!(
        rows >= min_rows,
        "{shown} has {rows} rows; at least {min_rows} are needed"
    );
    let too_empty: Vec<String> = names
        .iter()
        .zip(&columns)
        .filter_map(|(name, cells)| {
            let share = cells.iter().filter(|c| c.is_none()).count() as f64 / rows as f64;
            (share > MAX_EMPTY_SHARE).then(|| {
                format!(
                    "column {name} has {} empty cells (limit {})",
                    percent(share),
                    percent(MAX_EMPTY_SHARE)
                )
            })
        })
        .collect();
    ensure!(
        too_empty.is_empty(),
        "{shown}: {}; fix or drop those columns upstream",
        too_empty.join("; ")
    );
    Ok(Table {
        names,
        columns,
        labels,
    })
}

fn number(cell: &str) -> anyhow::Result<f32> {
    let value: f32 = cell
        .parse()
        .map_err(|_| anyhow::anyhow!("`{cell}` is not a number"))?;
    ensure!(value.is_finite(), "`{cell}` is not a finite number");
    Ok(value)
}

/// `0.4` as `40%`, `0.055` as `5.5%`.
fn percent(share: f64) -> String {
    format!("{}%", (share * 1000.0).round() / 10.0)
}

/// Writes the table as Parquet: a nullable `Float32` column per feature, a `UInt32`
/// label column. The file appears whole or not at all.
pub fn write_parquet(table: &Table, path: &Path) -> anyhow::Result<()> {
    let mut fields: Vec<Field> = table
        .names
        .iter()
        .map(|name| Field::new(name, DataType::Float32, true))
        .collect();
    fields.push(Field::new(LABEL, DataType::UInt32, false));
    let mut arrays: Vec<ArrayRef> = table
        .columns
        .iter()
        .map(|cells| Arc::new(Float32Array::from(cells.clone())) as ArrayRef)
        .collect();
    arrays.push(Arc::new(UInt32Array::from(table.labels.clone())));
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?;
    let partial = partial_path(path);
    let file =
        File::create(&partial).with_context(|| format!("cannot create {}", partial.display()))?;
    let mut writer = ArrowWriter::try_new(file, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot move {} into place", partial.display()))
}

/// Reads a table written by [`write_parquet`].
pub fn read_parquet(path: &Path) -> anyhow::Result<Table> {
    let shown = path.display();
    let file = File::open(path).with_context(|| format!("cannot open {shown}"))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file)
        .with_context(|| format!("{shown} is not a Parquet file"))?
        .build()?;
    let schema = reader.schema();
    let label_at = schema
        .index_of(LABEL)
        .map_err(|_| anyhow::anyhow!("{shown} has no `{LABEL}` column"))?;
    let names: Vec<String> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != label_at)
        .map(|(_, f)| f.name().clone())
        .collect();
    let mut columns: Vec<Vec<Option<f32>>> = vec![Vec::new(); names.len()];
    let mut labels = Vec::new();
    for batch in reader {
        let batch = batch.with_context(|| format!("{shown}: a corrupt row group"))?;
        let mut feature = 0;
        for (i, array) in batch.columns().iter().enumerate() {
            let name = schema.field(i).name();
            if i == label_at {
                let values = array.as_primitive_opt::<UInt32Type>().with_context(|| {
                    format!(
                        "{shown}: column {name} is {}, not UInt32",
                        array.data_type()
                    )
                })?;
                ensure!(
                    values.null_count() == 0,
                    "{shown}: column {name} has empty cells"
                );
                labels.extend(values.values().iter().copied());
            } else {
                let values = array.as_primitive_opt::<Float32Type>().with_context(|| {
                    format!(
                        "{shown}: column {name} is {}, not Float32",
                        array.data_type()
                    )
                })?;
                columns[feature].extend(values.iter());
                feature += 1;
            }
        }
    }
    Ok(Table {
        names,
        columns,
        labels,
    })
}

/// Writes `bytes` to a sibling file, then renames it to `path`, so a crash never leaves a
/// half-written file that a retry would take for a finished one.
pub fn write_whole(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let partial = partial_path(path);
    std::fs::write(&partial, bytes)
        .with_context(|| format!("cannot write {}", partial.display()))?;
    std::fs::rename(&partial, path)
        .with_context(|| format!("cannot move {} to {}", partial.display(), path.display()))
}

fn partial_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    path.with_file_name(name)
}
