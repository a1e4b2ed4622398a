//! Compile tests of flow's macros live in `tests/ui.rs`; this library is empty.
