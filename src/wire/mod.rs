//! Pure codecs for the binary formats kmsdns reads and writes: no I/O, no panics on any input.

pub mod dnsp;
pub mod rpc;
pub mod security;
pub mod tkey;
