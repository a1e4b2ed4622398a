use flow_runtime::prelude::*;

const ORDERS: Asset = Asset::new("s3://warehouse/orders");

#[task(outlets = "s3://warehouse/orders")]
fn a() {}

#[task(outlets = ["s3://warehouse/orders"])]
fn b() {}

#[task(outlets = [])]
fn c() {}

#[task(outlets = [ORDERS, 42])]
fn d() {}

fn main() {}
