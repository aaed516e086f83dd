//! What vouches for a log beyond its chain: signed notes and their keys, checkpoints and the
//! verifier state. The checks that use them are in [`crate::verify`](mod@crate::verify). The
//! keys of forward-secure sealing are in `chain::seal_key`, below the writer that seals with
//! them (a writer never imports from this layer).

pub mod checkpoint;
pub mod note;
pub mod state;
