//! Every shape of task function: sync or async, with the context anywhere, returning
//! nothing, a value, or a `Result` of any spelling.

use flow_runtime::TaskFn;
use flow_runtime::prelude::*;

#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct Rows {
    count: u32,
}

/// Makes rows.
///
/// A second paragraph.
#[task]
fn make(count: u32) -> Rows {
    Rows { count }
}

#[task]
fn context_first(ctx: &TaskContext, rows: Rows) -> String {
    format!("{}:{}", ctx.task_id(), rows.count)
}

#[task]
fn context_middle(a: u32, ctx: &flow_runtime::TaskContext, b: u32) -> u32 {
    assert_eq!(ctx.try_number(), 1);
    a + b
}

#[task]
fn context_last(mut text: String, _ctx: &'_ TaskContext) -> String {
    text.push('!');
    text
}

#[task]
fn unit(_ignored: String) {}

#[task]
fn explicit_unit() -> () {}

#[task]
fn std_result(x: u32) -> Result<u32, std::io::Error> {
    Ok(x * 2)
}

#[task]
fn anyhow_result(x: u32) -> anyhow::Result<u32> {
    anyhow::ensure!(x < 100, "too big");
    Ok(x + 1)
}

#[task]
fn io_result() -> std::io::Result<Vec<u8>> {
    Ok(vec![1, 2])
}

mod checked {
    pub type Result<T> = std::result::Result<T, std::fmt::Error>;
}

#[task]
fn fmt_result() -> std::fmt::Result {
    Ok(())
}

#[task]
fn aliased(x: u32) -> checked::Result<u32> {
    Ok(x)
}

#[task]
async fn async_plain(x: u32) -> u32 {
    x * 10
}

#[task]
async fn async_context(ctx: &TaskContext, x: u32) -> anyhow::Result<String> {
    tokio_yield().await;
    Ok(format!("{}={x}", ctx.task_id()))
}

#[task]
async fn async_unit() {}

#[task]
fn r#type(r#in: u32) -> u32 {
    r#in
}

async fn tokio_yield() {}

#[dag]
fn all_shapes() {
    let rows = make(3);
    context_first(rows);
    let sum = context_middle(1, 2);
    context_last("hi");
    unit("x");
    explicit_unit();
    let doubled = std_result(sum);
    anyhow_result(doubled);
    io_result();
    fmt_result();
    aliased(7);
    let ten = async_plain(1);
    async_context(ten);
    async_unit();
    r#type(4);
}

fn main() {
    // A task is still its function.
    assert_eq!(make(2), Rows { count: 2 });
    assert_eq!(context_middle(1, &TaskContext::for_test("d", "t"), 2), 3);
    assert!(anyhow_result(500).is_err());
    assert_eq!(block_on(async_plain(2)), 20);

    // Specs describe the function.
    let spec = make::spec();
    assert_eq!(spec.name().as_str(), "make");
    assert_eq!(spec.params().len(), 1);
    assert_eq!(spec.params()[0].name(), "count");
    assert_eq!(spec.params()[0].type_name(), "u32");
    assert!(spec.output().type_name().ends_with("Rows"));
    assert_eq!(
        spec.documentation(),
        Some("Makes rows.\n\nA second paragraph.")
    );
    assert_eq!(context_middle::spec().params().len(), 2);
    assert_eq!(anyhow_result::spec().output().type_name(), "u32");
    assert_eq!(fmt_result::spec().output().type_name(), "()");
    assert_eq!(r#type::spec().name().as_str(), "type");
    assert_eq!(r#type::spec().params()[0].name(), "in");
    assert!(matches!(async_plain::spec().function(), TaskFn::Async(_)));
    assert!(matches!(make::spec().function(), TaskFn::Sync(_)));

    // And the DAG runs them all, passing the context where each declared it.
    let run = all_shapes().unwrap().test().unwrap();
    assert_eq!(run.state, RunState::Success, "{run:?}");
    assert_eq!(
        run.output::<String>("context_first").unwrap(),
        "context_first:3"
    );
    assert_eq!(run.output::<u32>("context_middle").unwrap(), 3);
    assert_eq!(run.output::<String>("context_last").unwrap(), "hi!");
    assert_eq!(run.output::<u32>("std_result").unwrap(), 6);
    assert_eq!(run.output::<u32>("anyhow_result").unwrap(), 7);
    assert_eq!(run.output::<Vec<u8>>("io_result").unwrap(), vec![1, 2]);
    assert_eq!(
        run.output::<String>("async_context").unwrap(),
        "async_context=10"
    );
    assert_eq!(run.output::<u32>("type").unwrap(), 4);
}
