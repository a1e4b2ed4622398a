use flow_runtime::prelude::*;

#[task]
fn borrowed(text: &str, rows: &[u32], path: &std::path::Path) -> usize {
    text.len() + rows.len() + path.as_os_str().len()
}

fn main() {}
