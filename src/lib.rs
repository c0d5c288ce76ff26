//! ragstream: a stream-first chat server with function calling over a knowledge base.

pub mod kb;
